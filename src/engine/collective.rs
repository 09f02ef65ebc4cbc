//! What the processes ("ranks") of one data-parallel job do together. The engine needs
//! one collective operation, an all-gather, from which every rank computes the same
//! averaged gradient in the same order ([`super::execution::RankParallel`]); MPI provides
//! it across processes and machines (`--features mpi`, [`super::mpi`]).

use std::rc::Rc;

/// A failure of the job's communication.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CollectiveError(pub String);

/// The ranks of one job, each running the same training on its shard of every batch.
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Every rank's `values` (the same length on each), rank after rank, on every rank.
    fn all_gather(&self, values: &[f32]) -> Result<Vec<f32>, CollectiveError>;
    /// What connects the ranks, in words (`MPI (Open MPI v4.1.4)`).
    fn describe(&self) -> String;

    /// Ends every rank of the job with exit status `code` (after this rank has said why):
    /// the other ranks may be waiting in a collective operation for this one.
    fn end_job(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The job a training process belongs to: a [`Collective`] shared by everything that
/// trains in the process. Not `Send`: an MPI communicator stays on the thread that made
/// it.
#[derive(Clone)]
pub struct Ranks(pub Rc<dyn Collective>);

impl Ranks {
    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// Whether this rank writes the run directory (rank 0 alone does).
    pub fn leads(&self) -> bool {
        self.rank() == 0
    }
}

impl std::fmt::Debug for Ranks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ranks({} of {}, {})",
            self.rank(),
            self.size(),
            self.0.describe()
        )
    }
}

/// Ranks that are threads of one process, for tests of the data-parallel step without
/// MPI: each all-gather waits for every thread's values.
#[cfg(test)]
pub(crate) mod threads {
    use std::sync::{Arc, Barrier, Mutex};

    use super::{Collective, CollectiveError};

    /// What the threads share.
    struct Shared {
        slots: Mutex<Vec<Vec<f32>>>,
        barrier: Barrier,
    }

    /// One thread's rank.
    pub(crate) struct ThreadRank {
        rank: usize,
        shared: Arc<Shared>,
    }

    /// `size` ranks, one per thread that will use it.
    pub(crate) fn ranks(size: usize) -> Vec<ThreadRank> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![Vec::new(); size]),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| ThreadRank {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }

    impl Collective for ThreadRank {
        fn rank(&self) -> usize {
            self.rank
        }

        fn size(&self) -> usize {
            self.shared.barrier_size()
        }

        fn all_gather(&self, values: &[f32]) -> Result<Vec<f32>, CollectiveError> {
            self.shared.slots.lock().unwrap()[self.rank] = values.to_vec();
            self.shared.barrier.wait();
            let all = self.shared.slots.lock().unwrap().concat();
            // Nobody writes again before everybody has read.
            self.shared.barrier.wait();
            Ok(all)
        }

        fn describe(&self) -> String {
            "threads".into()
        }
    }

    impl Shared {
        fn barrier_size(&self) -> usize {
            self.slots.lock().unwrap().len()
        }
    }
}
