//! The `gdswap` binary: a thin shell over the library (see `gdswap::cli`).

fn main() -> std::process::ExitCode {
    gdswap::cli::main()
}
