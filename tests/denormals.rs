//! The subnormal-float mode (issue 23): set on every rayon worker, in either direction,
//! and recorded in `summary.json`. In a process of its own, because the mode is process
//! state that other tests' numbers depend on.

mod common;
use common::*;

use mentor::kernels::Denormals;
use mentor::kernels::denormals::{everywhere, set_everywhere};
use mentor::run::RunOptions;

/// `x * 1e-10` for `x = 1e-30` on every rayon worker: subnormal (about 1e-40) when
/// subnormals are kept, zero when they are flushed.
fn tiny_products() -> Vec<f32> {
    rayon::broadcast(|_| std::hint::black_box(1e-30_f32) * std::hint::black_box(1e-10_f32))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn the_mode_is_set_on_every_worker_and_recorded_in_the_summary() {
    set_everywhere(Denormals::Keep);
    assert_eq!(everywhere(), Some(Denormals::Keep));
    assert!(tiny_products().iter().all(|p| *p > 0.0 && !p.is_normal()));
    set_everywhere(Denormals::Flush);
    assert_eq!(everywhere(), Some(Denormals::Flush));
    assert!(tiny_products().iter().all(|p| *p == 0.0));

    // A run sets the mode it is asked for and records it.
    let dir = tempfile::tempdir().unwrap();
    for (mode, name) in [(Denormals::Keep, "keep"), (Denormals::Flush, "flush")] {
        let out = dir.path().join(name);
        let options = RunOptions {
            log: mentor::engine::LogFormat::Quiet,
            denormals: mode,
            ..RunOptions::new(&out)
        };
        let cfg = config(&["epochs=1", "data.per_class=10", "model.hidden=[16]"]);
        mentor::run::run(&cfg.check().unwrap(), &options).unwrap();
        assert_eq!(everywhere(), Some(mode));
        assert_eq!(summary(&out)["denormals"], name);
    }
}
