//! Subnormal (denormal) floats: whether the CPU flushes them to zero. Weights, gradients
//! and Adam moments of units that stop receiving gradient decay into the subnormal range,
//! where x86 arithmetic is many times slower, so a long run slows down as it goes (issue
//! 23: a Split-MNIST run's last task took 2.5x its first). Flushing them (MXCSR's
//! flush-to-zero and denormals-are-zero bits on x86_64, FPCR's FZ bit on aarch64) is what
//! PyTorch's `torch.set_flush_denormal(True)` does. The mode is per thread, so it is set
//! on the calling thread and on every thread of rayon's global pool, where mentor's
//! kernels, gemm and Burn's flex backend compute.

use serde::{Deserialize, Serialize};

/// What the CPU does with subnormal floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Denormals {
    /// Flush subnormal results and inputs to zero (fast; the default).
    #[default]
    Flush,
    /// Keep IEEE 754 gradual underflow (slow when values decay to ~1e-38).
    Keep,
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::Denormals;

    /// MXCSR bit 15: results that would be subnormal are zero.
    const FLUSH_TO_ZERO: u32 = 1 << 15;
    /// MXCSR bit 6: subnormal inputs are read as zero.
    const DENORMALS_ARE_ZERO: u32 = 1 << 6;
    const BOTH: u32 = FLUSH_TO_ZERO | DENORMALS_ARE_ZERO;

    fn read() -> u32 {
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR register into the given address, which
        // points at a live, aligned u32.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr
    }

    pub fn set(mode: Denormals) {
        let csr = read();
        let csr = match mode {
            Denormals::Flush => csr | BOTH,
            Denormals::Keep => csr & !BOTH,
        };
        // SAFETY: ldmxcsr loads MXCSR from a live u32 that differs from the current value
        // only in the FTZ and DAZ bits, which are valid to set on every x86_64 CPU with
        // SSE2 (all of them).
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags));
        }
    }

    pub fn get() -> Option<Denormals> {
        match read() & BOTH {
            BOTH => Some(Denormals::Flush),
            0 => Some(Denormals::Keep),
            _ => None,
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::Denormals;

    /// FPCR bit 24 (FZ): subnormal inputs and results are zero.
    const FZ: u64 = 1 << 24;

    fn read() -> u64 {
        let fpcr: u64;
        // SAFETY: reading FPCR has no side effect.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack)) };
        fpcr
    }

    pub fn set(mode: Denormals) {
        let fpcr = match mode {
            Denormals::Flush => read() | FZ,
            Denormals::Keep => read() & !FZ,
        };
        // SAFETY: writes FPCR with only the FZ bit changed.
        unsafe { std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack)) };
    }

    pub fn get() -> Option<Denormals> {
        Some(if read() & FZ != 0 {
            Denormals::Flush
        } else {
            Denormals::Keep
        })
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    use super::Denormals;

    pub fn set(_: Denormals) {}

    pub fn get() -> Option<Denormals> {
        None
    }
}

/// Sets `mode` on the calling thread only.
pub fn set_on_this_thread(mode: Denormals) {
    arch::set(mode);
}

/// The calling thread's mode; `None` on a CPU this module does not know, or where only
/// one of x86's two bits is set.
pub fn on_this_thread() -> Option<Denormals> {
    arch::get()
}

/// Sets `mode` on the calling thread and on every thread of rayon's global pool. If the
/// pool is not started yet it is started with a start handler that sets the mode, so a
/// thread it starts later has it too; threads started by other means are not changed.
pub fn set_everywhere(mode: Denormals) {
    // Fails (harmlessly) if the pool was already built; the broadcast covers that case.
    // 8 MiB stacks, the main thread's: commands run on a worker (see the binary's
    // `on_the_pool`).
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .start_handler(move |_| set_on_this_thread(mode))
        .build_global();
    rayon::broadcast(|_| set_on_this_thread(mode));
    set_on_this_thread(mode);
}

/// The mode of every thread of rayon's global pool and the calling thread, if they all
/// agree.
pub fn everywhere() -> Option<Denormals> {
    let here = on_this_thread()?;
    let workers = rayon::broadcast(|_| on_this_thread());
    workers.iter().all(|w| *w == Some(here)).then_some(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flush is the mode every run uses by default, so setting it here does not change
    /// what other tests in this process compute. (`tests/denormals.rs` switches to
    /// `Keep` and back in a process of its own.)
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn flush_is_set_on_every_rayon_worker_and_flushes() {
        set_everywhere(Denormals::Flush);
        assert_eq!(everywhere(), Some(Denormals::Flush));
        // A subnormal product is zero on every worker.
        let tiny = std::hint::black_box(1e-30_f32);
        let products = rayon::broadcast(|_| std::hint::black_box(tiny) * 1e-10);
        assert!(products.iter().all(|p| *p == 0.0), "{products:?}");
    }
}
