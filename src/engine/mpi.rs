//! MPI ranks as the [`Collective`] of a data-parallel job (`--features mpi`): the
//! processes `mpirun -np N` (or Slurm's `srun`) starts, on one machine or many, through
//! rsmpi and the system's MPI library.

use std::rc::Rc;

use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

use super::collective::{Collective, CollectiveError, Ranks};

/// The ranks of `MPI_COMM_WORLD`; MPI is finalised when the last handle is dropped.
pub struct MpiRanks {
    world: SimpleCommunicator,
    library: String,
    // Dropped after `world`: finalising MPI ends every communicator.
    _universe: Universe,
}

/// Whether an MPI launcher started this process (Open MPI's `mpirun`, or a PMI/PMIx
/// launcher such as Slurm's `srun` or MPICH's `mpiexec`).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
}

/// The job's ranks when an MPI launcher started this process with more than one rank;
/// `None` when none did (or with one rank: training alone). Initialises MPI, once per
/// process; the training loop calls MPI from one thread at a time.
pub fn ranks() -> Result<Option<Ranks>, CollectiveError> {
    if !launched_by_mpi() {
        return Ok(None);
    }
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
        .ok_or_else(|| CollectiveError("MPI was initialised twice in one process".into()))?;
    let world = universe.world();
    if world.size() < 2 {
        return Ok(None);
    }
    let library = mpi::environment::library_version()
        .ok()
        .and_then(|v| v.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_else(|| "MPI".into());
    Ok(Some(Ranks(Rc::new(MpiRanks {
        world,
        library,
        _universe: universe,
    }))))
}

impl Collective for MpiRanks {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather(&self, values: &[f32]) -> Result<Vec<f32>, CollectiveError> {
        if i32::try_from(values.len()).is_err() {
            return Err(CollectiveError(format!(
                "{} values per rank are more than one MPI message holds (2^31 - 1)",
                values.len()
            )));
        }
        let mut all = vec![0f32; values.len() * self.size()];
        // MPI's default error handler ends the job on a failed collective (a rank that
        // died): mpirun then stops every rank.
        self.world.all_gather_into(values, &mut all[..]);
        Ok(all)
    }

    fn describe(&self) -> String {
        format!("MPI ({})", self.library)
    }

    fn end_job(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
