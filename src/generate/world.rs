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

/// An address as text, `0x` and 40 lowercase hex digits, made on demand (no allocation).
#[derive(Clone, Copy)]
pub(super) struct Addr([u8; 42]);

impl Addr {
    /// The address of hash `h`: `mix(h)`, `mix(h ^ 1)` and the low half of `mix(h ^ 2)` in hex.
    fn of_hash(h: u64) -> Self {
        let mut s = [0u8; 42];
        s[..2].copy_from_slice(b"0x");
        let parts = [(mix(h), 8), (mix(h ^ 1), 8), (mix(h ^ 2) & 0xffff_ffff, 4)];
        let mut at = 2;
        for (v, bytes) in parts {
            for b in (0..bytes).rev() {
                s[at..at + 2].copy_from_slice(&HEX_PAIRS[(v >> (8 * b) & 0xff) as usize]);
                at += 2;
            }
        }
        Addr(s)
    }
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

impl AsRef<str> for Addr {
    fn as_ref(&self) -> &str {
        debug_assert!(self.0.is_ascii());
        // SAFETY: `of_hash` writes only ASCII ("0x" and hex digits), which is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// The latent world: addresses and which are illicit, fixed by the seed.
pub(super) struct World {
    seed: u64,
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
            seed,
            illicit: Vec::with_capacity(n),
            home: Vec::with_capacity(n),
            hub: Vec::with_capacity(n),
            mixer: Vec::with_capacity(n),
            illicit_ids: Vec::new(),
            hubs: Vec::new(),
            mixers: Vec::new(),
        };
        for i in 0..n as u64 {
            let h = w.hash(i as u32);
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

    /// The laundering profile's world of `n` addresses for `seed`: a `pool_share` of them
    /// launder (independently of their activity), `hubs` are the exchanges, and one address in
    /// 5,000 outside both is a mixer. Addresses are those of [`World::new`] for the same seed.
    pub(super) fn laundering(seed: u64, n: usize, pool_share: f64, hubs: Vec<u32>) -> Self {
        let mut w = World {
            seed,
            illicit: vec![false; n],
            home: vec![0; n],
            hub: vec![false; n],
            mixer: vec![false; n],
            illicit_ids: Vec::new(),
            hubs,
            mixers: Vec::new(),
        };
        for &h in &w.hubs {
            w.hub[h as usize] = true;
        }
        for i in 0..n as u32 {
            let h = w.hash(i);
            if !w.hub[i as usize] && unit(mix(h ^ 13)) < pool_share {
                w.illicit[i as usize] = true;
                w.illicit_ids.push(i);
            } else if !w.hub[i as usize] && unit(mix(h ^ 14)) < 0.0002 {
                w.mixer[i as usize] = true;
                w.mixers.push(i);
            }
        }
        w
    }

    /// Number of addresses.
    pub(super) fn len(&self) -> usize {
        self.illicit.len()
    }

    /// The hash every property of address `i` derives from.
    fn hash(&self, i: u32) -> u64 {
        mix(self.seed ^ mix(i as u64))
    }

    /// The text of address `i`.
    pub(super) fn addr(&self, i: u32) -> Addr {
        Addr::of_hash(self.hash(i))
    }
}
