//! The `mentor` command: parses the command line, calls the library, maps errors to
//! exit code 1 with a one-line message (the cause chain joined by ": ").

mod cli;

use clap::Parser;

fn main() {
    // Every command computes with subnormal floats flushed (a run's --denormals may say
    // otherwise); see mentor::kernels::denormals.
    mentor::kernels::denormals::set_everywhere(mentor::kernels::Denormals::Flush);
    keep_freed_pages_mapped();
    stop_quietly_on_a_closed_pipe();
    let args = cli::Cli::parse();
    cli::interrupt::install();
    if let Err(err) = cli::job::join().and_then(|()| on_the_pool(|| cli::run(args))) {
        // One line: the cause chain, skipping causes that a message already quotes.
        let mut line = String::new();
        for cause in err.chain() {
            let text = cause.to_string();
            if !line.contains(&text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
        }
        let line = line.replace('\n', " ");
        match cli::job::ranks() {
            Some(r) => eprintln!("error (rank {} of {}): {line}", r.rank(), r.size()),
            None => eprintln!("error: {line}"),
        }
        cli::job::exit(1);
    }
    cli::job::leave();
}

/// Runs `command` on a thread of rayon's pool rather than on the main thread (one MPI
/// rank's command stays on the thread that joined the job, as MPI wants). Every kernel
/// splits its work with rayon: called from the main thread, each split hands the whole
/// job to the pool and puts the caller to sleep until a worker has finished it (two
/// thread wake-ups per operation, ~15% of a batch-1 EfficientNet inference in perf);
/// called from a worker, the caller runs its own share and only the other half moves.
fn on_the_pool<R: Send>(command: impl FnOnce() -> R + Send) -> R {
    match cli::job::ranks() {
        Some(_) => command(),
        None => rayon::scope(|_| command()),
    }
}

/// Restores the default action of SIGPIPE (end the process), as command-line tools do:
/// Rust ignores the signal, so `mentor params | head` made `println!` panic on the
/// closed pipe. Only output to a pipe is affected; files report write errors as before.
fn stop_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default is async-signal-safe and
    // runs before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `mi_option_purge_decommits` in the mimalloc 3 header that libmimalloc-sys 0.1.49
/// (pinned) builds: `c_src/mimalloc/v3/include/mimalloc.h`, the sixth `mi_option_e`. The
/// crate names no constant for it.
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// mimalloc returns memory it has kept free for a while to the kernel with
/// `MADV_DONTNEED`, so the next tensor of that size faults in freshly zeroed pages: 35%
/// of the EfficientNet-Lite0 training step went to the kernel's `clear_page_erms`. With
/// purges as `MADV_FREE` instead the pages stay mapped and are reused as they are, and
/// the kernel still takes them back under memory pressure (step 11.6 s -> 8.1 s, README).
fn keep_freed_pages_mapped() {
    // SAFETY: setting an option is thread-safe in mimalloc, and this runs before any
    // other thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
}

/// mimalloc keeps freed large buffers for reuse instead of returning them to the kernel
/// after every tensor op, which glibc's malloc does (31-44% system time in the CNN step,
/// shared/PERF-NOTES.md); measured in README's bench table.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
