//! `pipeline`: the command-line entry point. All work is done by the `aml_pipeline` library.

fn main() {
    aml_pipeline::heap::keep_freed_memory();
    match aml_pipeline::cli::main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", aml_pipeline::error::error_text(&e));
            std::process::exit(2);
        }
    }
}
