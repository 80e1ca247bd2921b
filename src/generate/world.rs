//! The latent world of the generator, fixed by the seed, and the hashing helpers that derive
//! every seed-dependent value without a random-number stream.

use crate::features::TYPOLOGIES;

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from a hash.
pub(super) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a hash of a string.
pub(super) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The latent world: addresses and which are illicit, fixed by the seed.
pub(super) struct World {
    /// Address strings, indexed by address id.
    pub(super) addr: Vec<String>,
    /// Whether each address is illicit.
    pub(super) illicit: Vec<bool>,
    /// Each address's home typology (an index into [`TYPOLOGIES`]).
    pub(super) home: Vec<u8>,
    /// Whether each address is an exchange-like hub.
    pub(super) hub: Vec<bool>,
    /// Whether each address is a mixer.
    pub(super) mixer: Vec<bool>,
    /// Ids of the illicit addresses, ascending.
    pub(super) illicit_ids: Vec<u32>,
    /// Ids of the hubs, ascending (never empty).
    pub(super) hubs: Vec<u32>,
    /// Ids of the mixers, ascending.
    pub(super) mixers: Vec<u32>,
}

impl World {
    /// The world of `n` addresses for `seed`.
    pub(super) fn new(seed: u64, n: usize) -> Self {
        let mut w = World {
            addr: Vec::with_capacity(n),
            illicit: Vec::with_capacity(n),
            home: Vec::with_capacity(n),
            hub: Vec::with_capacity(n),
            mixer: Vec::with_capacity(n),
            illicit_ids: Vec::new(),
            hubs: Vec::new(),
            mixers: Vec::new(),
        };
        for i in 0..n as u64 {
            let h = mix(seed ^ mix(i));
            w.addr.push(format!(
                "0x{:016x}{:016x}{:08x}",
                mix(h),
                mix(h ^ 1),
                mix(h ^ 2) as u32
            ));
            let ill = unit(mix(h ^ 3)) < 0.03;
            let home = (mix(h ^ 4) % TYPOLOGIES.len() as u64) as u8;
            let hub = !ill && unit(mix(h ^ 5)) < 0.002;
            let mixer = ill && TYPOLOGIES[home as usize] == "MIXING_BEHAVIOR";
            w.illicit.push(ill);
            w.home.push(home);
            w.hub.push(hub);
            w.mixer.push(mixer);
            if ill {
                w.illicit_ids.push(i as u32);
            }
            if hub {
                w.hubs.push(i as u32);
            }
            if mixer {
                w.mixers.push(i as u32);
            }
        }
        if w.hubs.is_empty() {
            let first_benign = (0..n as u32).find(|&i| !w.illicit[i as usize]).unwrap_or(0);
            w.hub[first_benign as usize] = true;
            w.hubs.push(first_benign);
        }
        w
    }
}
