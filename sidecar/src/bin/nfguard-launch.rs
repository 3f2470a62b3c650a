//! `nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]`: see `nfguard_sidecar::launch`.
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match nfguard_sidecar::launch::parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nfguard-launch: {e}");
            std::process::exit(nfguard_sidecar::launch::EXIT_USAGE);
        }
    };
    std::process::exit(nfguard_sidecar::launch::run(cfg));
}
