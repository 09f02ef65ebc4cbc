//! The data-parallel job this process belongs to: with `--features mpi`, the MPI ranks an
//! MPI launcher (`mpirun -np N`, Slurm's `srun`) started; alone otherwise.

use std::cell::RefCell;

use mentor::engine::Ranks;

thread_local! {
    // MPI handles stay on the thread that initialised MPI (the main thread).
    static RANKS: RefCell<Option<Ranks>> = const { RefCell::new(None) };
}

/// Joins the job an MPI launcher started this process in (nothing to do otherwise).
pub fn join() -> anyhow::Result<()> {
    #[cfg(feature = "mpi")]
    {
        let ranks = mentor::engine::mpi::ranks()?;
        RANKS.with(|slot| *slot.borrow_mut() = ranks);
    }
    if let Some(r) = ranks() {
        super::interrupt::set_job(r.rank(), r.size());
    }
    Ok(())
}

/// The job's ranks, when this process trains as one of several.
pub fn ranks() -> Option<Ranks> {
    RANKS.with(|slot| slot.borrow().clone())
}

/// Leaves the job: MPI is finalised once the last handle is gone.
pub fn leave() {
    RANKS.with(|slot| slot.borrow_mut().take());
}

/// Ends the process with `code` after an error this rank has reported: the whole job
/// when there is one (the other ranks may be waiting for this one), else this process.
pub fn exit(code: i32) -> ! {
    match ranks() {
        Some(ranks) => ranks.0.end_job(code),
        None => std::process::exit(code),
    }
}
