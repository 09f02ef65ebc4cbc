//! Image folders read from disk while training runs: the file list is scanned once, and
//! each pass decodes, transforms and batches the photos on a small pool of worker
//! threads that work at most `prefetch` batches ahead of the step, so memory is bounded
//! by that queue and not by the folder (torchvision's `ImageFolder` + `DataLoader`).
//!
//! Every batch is a function of the run's seed, the epoch and its examples alone (each
//! example's augmentation draws from its own [`example_rng`] stream, and batches are
//! handed over in order), so 1 worker, 2 workers or none give the same batches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::examples::{Examples, HostBatch, HostBatches};
use super::transform::{Transform, example_view_rng};
use super::{BatchOrder, DataError};
use crate::rules::{self, Rule, Violation};

/// The image files of a folder `root/<class>/**/*.{png,jpg,jpeg}`: classes are the
/// sub-folders in name order, files are found at any depth below them, in path order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFiles {
    /// Every file, class after class.
    pub paths: Vec<PathBuf>,
    /// The class of each file.
    pub labels: Vec<usize>,
    /// A name per class (its folder's).
    pub class_names: Vec<String>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Sorted entries of `dir` (hidden ones left out).
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Image files at any depth below `dir`, in path order.
fn images_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    for path in entries(dir)? {
        if path.is_dir() {
            images_below(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFiles {
    /// Scans `root`. A class folder without images is an error (it would be a class no
    /// image teaches, as torchvision's `ImageFolder` says too).
    pub fn scan(root: &Path) -> Result<Self, DataError> {
        let classes: Vec<PathBuf> = entries(root)?.into_iter().filter(|p| p.is_dir()).collect();
        if classes.is_empty() {
            return Err(DataError::format(root, "no class sub-folders found"));
        }
        let mut files = ImageFiles {
            paths: Vec::new(),
            labels: Vec::new(),
            class_names: Vec::new(),
        };
        for (label, dir) in classes.iter().enumerate() {
            let before = files.paths.len();
            images_below(dir, &mut files.paths)?;
            if files.paths.len() == before {
                return Err(DataError::format(
                    dir,
                    "class folder holds no PNG or JPEG images: add images or remove the folder",
                ));
            }
            files.labels.resize(files.paths.len(), label);
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            files.class_names.push(name.unwrap_or_default());
        }
        Ok(files)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether there is no file.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The files at `indices`, in that order (the class names kept).
    pub fn select(&self, indices: &[usize]) -> ImageFiles {
        ImageFiles {
            paths: indices.iter().map(|&i| self.paths[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }
}

fn default_workers() -> usize {
    2
}

fn default_prefetch() -> usize {
    4
}

/// How photos are read (`[data.loader]`): how many worker threads decode and transform,
/// and how many batches they may prepare ahead of the training step. Neither changes a
/// result, so a run may be resumed with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Worker threads (0 reads each batch on the training thread when it is needed).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Batches prepared ahead (at least 1).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            prefetch: default_prefetch(),
        }
    }
}

impl LoaderConfig {
    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        rules::at_least(self.prefetch, 1).map_err(|r| Violation::new("data.loader.prefetch", r))?;
        if self.workers > 64 {
            return rules::fail(
                "data.loader.workers",
                Rule::AtMost {
                    max: 64.0,
                    got: self.workers as f64,
                },
            );
        }
        Ok(())
    }
}

/// A split of photos on disk, transformed as it is read.
#[derive(Clone)]
pub struct ImageStream {
    inner: Arc<Inner>,
}

struct Inner {
    files: ImageFiles,
    num_classes: usize,
    transform: Transform,
    shape: [usize; 3],
    seed: u64,
    /// Augmented views per photo (see [`ImageStream::with_views`]).
    views: usize,
    loader: LoaderConfig,
    skip_corrupt: bool,
    /// Split positions of the files skipped as unreadable so far.
    skipped: Mutex<BTreeSet<usize>>,
    /// The most batches the workers ever held ahead of the consumer.
    peak_ahead: AtomicUsize,
}

impl std::fmt::Debug for ImageStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStream")
            .field("files", &self.inner.files.len())
            .field("shape", &self.inner.shape)
            .field("loader", &self.inner.loader)
            .finish()
    }
}

impl ImageStream {
    /// A stream of `files` transformed by `transform`, whose checked output is `shape`;
    /// augmentations are seeded by `seed`. With `skip_corrupt`, a file that cannot be read
    /// or decoded is left out of its batch and counted; without, it is an error naming it.
    pub fn new(
        files: ImageFiles,
        num_classes: usize,
        transform: Transform,
        shape: [usize; 3],
        seed: u64,
        loader: LoaderConfig,
        skip_corrupt: bool,
    ) -> Self {
        Self::from_inner(Inner {
            files,
            num_classes,
            transform,
            shape,
            seed,
            views: 1,
            loader,
            skip_corrupt,
            skipped: Mutex::new(BTreeSet::new()),
            peak_ahead: AtomicUsize::new(0),
        })
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same photos, each made `views` times by the transform from its own random
    /// stream (`(seed, epoch, index, view)`; view 0 is what a one-view stream makes), for
    /// methods that compare views of one image (SimCLR, MoCo). A host batch stacks an
    /// example's views along the channels (`[B, views * C, H, W]`, view after view); the
    /// photo is read and decoded once for all of them.
    pub fn with_views(&self, views: usize) -> ImageStream {
        self.over(self.inner.files.clone(), views)
    }

    /// The same transform and settings over other `files` (a subset of these, say),
    /// `views` views of each (see [`ImageStream::with_views`]).
    pub fn over(&self, files: ImageFiles, views: usize) -> ImageStream {
        let inner = &self.inner;
        Self::from_inner(Inner {
            files,
            num_classes: inner.num_classes,
            transform: inner.transform.clone(),
            shape: inner.shape,
            seed: inner.seed,
            views: views.max(1),
            loader: inner.loader,
            skip_corrupt: inner.skip_corrupt,
            skipped: Mutex::new(BTreeSet::new()),
            peak_ahead: AtomicUsize::new(0),
        })
    }

    /// The files.
    pub fn files(&self) -> &ImageFiles {
        &self.inner.files
    }

    /// The files skipped as unreadable so far (with `skip_corrupt`).
    pub fn skipped(&self) -> Vec<PathBuf> {
        let skipped = self.inner.skipped.lock().unwrap_or_else(|p| p.into_inner());
        skipped
            .iter()
            .map(|&i| self.inner.files.paths[i].clone())
            .collect()
    }

    /// The most batches that were ever prepared ahead of the consumer (at most the
    /// loader's `prefetch`).
    pub fn peak_ahead(&self) -> usize {
        self.inner.peak_ahead.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// The batch of the examples at `indices` for `epoch`.
    fn batch(&self, indices: &[usize], epoch: usize) -> Result<HostBatch, DataError> {
        let per = self.views * self.shape.iter().product::<usize>();
        let mut pixels = vec![0f32; indices.len() * per];
        let mut kept = 0;
        let mut labels = Vec::with_capacity(indices.len());
        let mut positions = Vec::with_capacity(indices.len());
        for &i in indices {
            let path = &self.files.paths[i];
            let out = &mut pixels[kept * per..(kept + 1) * per];
            let read = super::image_file::read_image_file(path).and_then(|bytes| {
                let mut rngs: Vec<_> = (0..self.views)
                    .map(|v| example_view_rng(self.seed, epoch, i, v))
                    .collect();
                self.transform
                    .apply_views(&bytes, &mut rngs, out)
                    .map_err(|reason| DataError::format(path, reason))
            });
            match read {
                Ok(()) => {
                    kept += 1;
                    labels.push(self.files.labels[i]);
                    positions.push(i);
                }
                Err(_) if self.skip_corrupt => {
                    let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
                    skipped.insert(i);
                }
                Err(e) => return Err(e),
            }
        }
        pixels.truncate(kept * per);
        let [c, h, w] = self.shape;
        Ok(HostBatch {
            pixels,
            labels,
            indices: positions,
            shape: [self.views * c, h, w],
        })
    }
}

impl Examples for ImageStream {
    fn len(&self) -> usize {
        self.inner.files.len()
    }

    fn shape(&self) -> [usize; 3] {
        self.inner.shape
    }

    fn num_classes(&self) -> usize {
        self.inner.num_classes
    }

    fn views(&self) -> usize {
        self.inner.views
    }

    fn batches(&self, order: BatchOrder, epoch: usize) -> HostBatches<'_> {
        let chunks: Vec<Vec<usize>> = order.batches().map(<[usize]>::to_vec).collect();
        if self.inner.loader.workers == 0 {
            // As with workers, the pass ends at its first error.
            let (inner, mut failed) = (&self.inner, false);
            return Box::new(chunks.into_iter().map_while(move |idx| {
                if failed {
                    return None;
                }
                let batch = inner.batch(&idx, epoch);
                failed = batch.is_err();
                Some(batch)
            }));
        }
        Box::new(Prefetcher::start(self.inner.clone(), chunks, epoch))
    }

    fn describe(&self) -> String {
        let f32_bytes = self.len() * self.inner.shape.iter().product::<usize>() * 4;
        let views = match self.inner.views {
            1 => String::new(),
            k => format!(", {k} augmented views of each"),
        };
        format!(
            "{} photos streamed from disk{views} by {} worker(s), {} batch(es) ahead (in memory as f32 they would take {:.1} GB)",
            self.len(),
            self.inner.loader.workers,
            self.inner.loader.prefetch,
            f32_bytes as f64 / 1e9
        )
    }
}

/// Which batches the workers may start: claims run at most `prefetch` ahead of the
/// batches handed to the consumer.
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

struct GateState {
    next_claim: usize,
    delivered: usize,
    stop: bool,
}

/// The worker pool of one pass: batches made ahead on worker threads, handed over in
/// order. Dropping it stops the workers (a pass cut short by `max_steps` or an error).
struct Prefetcher {
    results: Receiver<(usize, Result<HostBatch, DataError>)>,
    pending: BTreeMap<usize, Result<HostBatch, DataError>>,
    next: usize,
    total: usize,
    gate: Arc<Gate>,
    workers: Vec<JoinHandle<()>>,
}

impl Prefetcher {
    fn start(inner: Arc<Inner>, chunks: Vec<Vec<usize>>, epoch: usize) -> Self {
        let total = chunks.len();
        let chunks = Arc::new(chunks);
        let gate = Arc::new(Gate {
            state: Mutex::new(GateState {
                next_claim: 0,
                delivered: 0,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        let (send, results) = channel();
        let workers = (0..inner.loader.workers)
            .map(|_| {
                let (inner, chunks, gate, send) =
                    (inner.clone(), chunks.clone(), gate.clone(), send.clone());
                std::thread::spawn(move || work(&inner, &chunks, epoch, &gate, &send))
            })
            .collect();
        Self {
            results,
            pending: BTreeMap::new(),
            next: 0,
            total,
            gate,
            workers,
        }
    }

    fn stop(&mut self) {
        let mut state = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        state.stop = true;
        drop(state);
        self.gate.changed.notify_all();
    }
}

/// A worker: claims the next batch the gate allows, makes it, sends it; until none is
/// left or the pass is stopped.
fn work(
    inner: &Inner,
    chunks: &[Vec<usize>],
    epoch: usize,
    gate: &Gate,
    send: &Sender<(usize, Result<HostBatch, DataError>)>,
) {
    loop {
        let claim = {
            let mut state = gate.state.lock().unwrap_or_else(|p| p.into_inner());
            while !state.stop
                && state.next_claim < chunks.len()
                && state.next_claim >= state.delivered + inner.loader.prefetch
            {
                state = gate.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.stop || state.next_claim >= chunks.len() {
                return;
            }
            state.next_claim += 1;
            let ahead = state.next_claim - state.delivered;
            inner.peak_ahead.fetch_max(ahead, Ordering::Relaxed);
            state.next_claim - 1
        };
        let batch = inner.batch(&chunks[claim], epoch);
        if send.send((claim, batch)).is_err() {
            return;
        }
    }
}

impl Iterator for Prefetcher {
    type Item = Result<HostBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let item = loop {
            if let Some(item) = self.pending.remove(&self.next) {
                break item;
            }
            match self.results.recv() {
                Ok((b, item)) => {
                    self.pending.insert(b, item);
                }
                Err(_) => {
                    // Every worker ended without the batch: one of them panicked.
                    self.next = self.total;
                    return Some(Err(DataError::Invalid(
                        "a data loader worker stopped unexpectedly".into(),
                    )));
                }
            }
        };
        self.next += 1;
        let mut state = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        state.delivered = self.next;
        drop(state);
        self.gate.changed.notify_all();
        if item.is_err() {
            // The pass ends at its first error.
            self.next = self.total;
            self.stop();
        }
        Some(item)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::transform::{Size, Step};

    /// `per_class` PNGs and JPEGs of random sizes in two classes (one nested a level
    /// deeper), their colour telling the class.
    fn folder(per_class: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("cat", 40u8), ("dog", 200u8)] {
            for i in 0..per_class {
                let sub = if i % 3 == 0 { "nested/deeper" } else { "" };
                let d = dir.path().join(class).join(sub);
                std::fs::create_dir_all(&d).unwrap();
                let (w, h) = (9 + (i * 7) % 13, 8 + (i * 5) % 11);
                let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                    image::Rgb([value, (x * 20) as u8, (y * 20) as u8])
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(d.join(format!("{i:03}.{ext}"))).unwrap();
            }
        }
        dir
    }

    fn transform() -> Transform {
        Transform {
            steps: vec![
                Step::RandomResizedCrop {
                    size: Size::Side(8),
                    scale: [0.3, 1.0],
                    ratio: [0.75, 4.0 / 3.0],
                },
                Step::HorizontalFlip { p: 0.5 },
            ],
        }
    }

    fn stream(dir: &Path, workers: usize, prefetch: usize, skip: bool) -> ImageStream {
        let files = ImageFiles::scan(dir).unwrap();
        let n = files.class_names.len();
        ImageStream::new(
            files,
            n,
            transform(),
            [3, 8, 8],
            7,
            LoaderConfig { workers, prefetch },
            skip,
        )
    }

    fn pass(s: &ImageStream, epoch: usize) -> Vec<HostBatch> {
        let order = BatchOrder::shuffled(s.len(), 5, 7, epoch);
        s.batches(order, epoch).map(Result::unwrap).collect()
    }

    #[test]
    fn scan_finds_nested_files_in_class_order() {
        let dir = folder(6);
        std::fs::write(dir.path().join("cat/notes.txt"), "x").unwrap();
        let files = ImageFiles::scan(dir.path()).unwrap();
        assert_eq!(files.class_names, ["cat", "dog"]);
        assert_eq!(files.len(), 12);
        assert_eq!(files.labels.iter().filter(|&&l| l == 1).count(), 6);
        assert!(files.paths[0].to_string_lossy().contains("cat/0"));
        assert!(
            files
                .paths
                .iter()
                .any(|p| p.to_string_lossy().contains("nested/deeper"))
        );
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        let msg = ImageFiles::scan(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("empty") && msg.contains("no PNG or JPEG"),
            "{msg}"
        );
    }

    #[test]
    fn batches_are_the_same_for_any_number_of_workers() {
        let dir = folder(12);
        let serial = stream(dir.path(), 0, 1, false);
        let one = stream(dir.path(), 1, 2, false);
        let two = stream(dir.path(), 2, 3, false);
        for epoch in 0..2 {
            let want = pass(&serial, epoch);
            assert_eq!(want.len(), 5);
            assert_eq!(pass(&one, epoch), want);
            assert_eq!(pass(&two, epoch), want);
            // Labels follow the files; the red channel tells the class.
            for b in &want {
                for (k, &l) in b.labels.iter().enumerate() {
                    let red = b.pixels[k * 192 + 27] * 255.0;
                    assert!((red - [40.0, 200.0][l]).abs() < 12.0, "{red} for {l}");
                }
            }
        }
        assert_ne!(pass(&serial, 0), pass(&serial, 1));
    }

    #[test]
    fn views_stack_along_channels_and_view_0_is_the_single_view() {
        let dir = folder(6);
        let single = stream(dir.path(), 0, 1, false);
        for (workers, prefetch) in [(0, 1), (2, 2)] {
            let views = stream(dir.path(), workers, prefetch, false).with_views(2);
            assert_eq!(Examples::views(&views), 2);
            assert_eq!(Examples::shape(&views), [3, 8, 8]);
            for (one, two) in pass(&single, 1).iter().zip(pass(&views, 1)) {
                assert_eq!(two.shape, [6, 8, 8]);
                assert_eq!((&two.labels, &two.indices), (&one.labels, &one.indices));
                for k in 0..one.len() {
                    let ex = &two.pixels[k * 384..(k + 1) * 384];
                    assert!(ex[..192] == one.pixels[k * 192..(k + 1) * 192]);
                    assert!(ex[..192] != ex[192..], "both views drew alike");
                }
            }
        }
        // A subset keeps the views and the transform.
        let views = single.with_views(3);
        let sub = views.over(views.files().select(&[0, 5]), 3);
        assert_eq!((Examples::len(&sub), Examples::views(&sub)), (2, 3));
    }

    #[test]
    fn workers_stay_within_the_prefetch_queue() {
        let dir = folder(15);
        let s = stream(dir.path(), 2, 2, false);
        let order = BatchOrder::sequential(s.len(), 3);
        let mut n = 0;
        for b in s.batches(order, 0) {
            b.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            n += 1;
        }
        assert_eq!(n, 10);
        assert!((1..=2).contains(&s.peak_ahead()), "{}", s.peak_ahead());
        // A pass dropped half-way stops its workers.
        let mut cut = s.batches(BatchOrder::sequential(s.len(), 3), 0);
        cut.next().unwrap().unwrap();
        drop(cut);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it_or_skipped_and_counted() {
        let dir = folder(6);
        let bad = dir.path().join("dog/002.png");
        std::fs::write(&bad, b"not a png at all").unwrap();
        for workers in [0, 2] {
            let s = stream(dir.path(), workers, 2, false);
            let order = BatchOrder::sequential(s.len(), 4);
            let results: Vec<_> = s.batches(order, 0).collect();
            let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            assert!(err.to_string().contains("dog/002.png"), "{err}");
            // The pass ends at the error.
            assert!(results.last().unwrap().is_err());
        }
        let s = stream(dir.path(), 2, 2, true);
        let batches = pass(&s, 0);
        assert_eq!(batches.iter().map(HostBatch::len).sum::<usize>(), 11);
        assert_eq!(s.skipped(), vec![bad]);
        assert_eq!(pass(&stream(dir.path(), 0, 1, true), 0), batches);
    }
}
