//! The tiny program the load binary execs: with a 16-hex-digit CLOCK_MONOTONIC
//! stamp (taken just before execve) as its argument, it prints how many
//! nanoseconds passed until its `main` ran; without one, it just exits.

fn main() {
    let now = nfguard_bench::sys::now_ns();
    if let Some(stamp) = std::env::args().nth(1) {
        if let Ok(t0) = u64::from_str_radix(&stamp, 16) {
            println!("{}", now.saturating_sub(t0));
        }
    }
}
