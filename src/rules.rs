//! The rules a config value keeps, one variant per rule: linfa's pattern (a typed error a
//! caller can match, as `KMeansParamsError::NClusters`) with candle's structured fields
//! (the offending value is a field, not text). Every `validate` in mentor returns a
//! [`Violation`]: the dotted key and the [`Rule`] it breaks.
//!
//! A vocabulary leaf: every layer may name it, it names no other module.

use std::fmt;

/// A config value that breaks a rule: the dotted key (`optim.momentum`,
/// `groups[1].lr_mult`) and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config key `{key}`: {rule}")]
pub struct Violation {
    /// Dotted path of the key.
    pub key: String,
    /// The rule it breaks, with the offending value.
    pub rule: Rule,
}

impl Violation {
    /// A violation of `rule` at `key`.
    pub fn new(key: impl Into<String>, rule: Rule) -> Self {
        Self {
            key: key.into(),
            rule,
        }
    }

    /// The same violation under a parent key: `strategy.` + `temperature`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.key = if self.key.is_empty() {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{}", self.key)
        };
        self
    }
}

/// `Err(Violation::new(key, rule))`, for `return fail(...)` in validators.
pub fn fail<T>(key: impl Into<String>, rule: Rule) -> Result<T, Violation> {
    Err(Violation::new(key, rule))
}

/// An interval of allowed values with open or closed ends, shown as `[0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower end.
    pub low: f64,
    /// Whether the lower end is allowed.
    pub low_closed: bool,
    /// The upper end.
    pub high: f64,
    /// Whether the upper end is allowed.
    pub high_closed: bool,
}

impl Interval {
    /// `[low, high]`.
    pub const fn closed(low: f64, high: f64) -> Self {
        Self {
            low,
            low_closed: true,
            high,
            high_closed: true,
        }
    }

    /// `[low, high)`.
    pub const fn closed_open(low: f64, high: f64) -> Self {
        Self {
            low,
            low_closed: true,
            high,
            high_closed: false,
        }
    }

    /// `(low, high]`.
    pub const fn open_closed(low: f64, high: f64) -> Self {
        Self {
            low,
            low_closed: false,
            high,
            high_closed: true,
        }
    }

    /// `[0, 1]`: a probability.
    pub const PROBABILITY: Self = Self::closed(0.0, 1.0);

    /// `[0, 1)`: a dropout rate or a momentum.
    pub const UNIT_OPEN: Self = Self::closed_open(0.0, 1.0);

    /// Whether `v` lies inside (NaN never does).
    pub fn contains(&self, v: f64) -> bool {
        let above = if self.low_closed {
            v >= self.low
        } else {
            v > self.low
        };
        let below = if self.high_closed {
            v <= self.high
        } else {
            v < self.high
        };
        above && below
    }

    /// `Ok` when `v` lies inside, else [`Rule::Within`].
    pub fn check(&self, v: f64) -> Result<(), Rule> {
        if self.contains(v) {
            Ok(())
        } else {
            Err(Rule::Within {
                interval: *self,
                got: v,
            })
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}, {}{}",
            if self.low_closed { '[' } else { '(' },
            self.low,
            self.high,
            if self.high_closed { ']' } else { ')' }
        )
    }
}

/// The f64 that prints as `v` prints (so an f32 of 0.1 shows as 0.1, not 0.10000000149).
pub fn shown(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::NAN)
}

/// `Ok` when `v` is finite and > 0, else [`Rule::Positive`].
pub fn positive(v: f64) -> Result<(), Rule> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Rule::Positive { got: v })
    }
}

/// `Ok` when `v` is finite and >= 0, else [`Rule::NonNegative`].
pub fn non_negative(v: f64) -> Result<(), Rule> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Rule::NonNegative { got: v })
    }
}

/// `Ok` when the count `v` is >= `min`, else [`Rule::AtLeast`].
pub fn at_least(v: usize, min: usize) -> Result<(), Rule> {
    if v >= min {
        Ok(())
    } else {
        Err(Rule::AtLeast {
            min: min as f64,
            got: v as f64,
        })
    }
}

/// `Ok` when every count in `values` is >= 1, else [`Rule::EveryAtLeastOne`].
pub fn every_at_least_one(values: &[usize]) -> Result<(), Rule> {
    if values.contains(&0) {
        Err(Rule::EveryAtLeastOne {
            got: values.to_vec(),
        })
    } else {
        Ok(())
    }
}

/// One variant per rule a config value can break; its text says the rule and shows the
/// offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rule {
    // === One value ===
    /// A count or size below its minimum.
    #[error("must be >= {min}, got {got}")]
    AtLeast {
        /// The smallest allowed value.
        min: f64,
        /// The value given.
        got: f64,
    },
    /// A count above its maximum.
    #[error("must be at most {max}, got {got}")]
    AtMost {
        /// The largest allowed value.
        max: f64,
        /// The value given.
        got: f64,
    },
    /// A kernel size that must be odd (so that it has a centre tap).
    #[error("must be odd, got {got}")]
    Odd {
        /// The value given.
        got: u64,
    },
    /// A rate, temperature or scale that must be finite and > 0.
    #[error("must be finite and > 0, got {got}")]
    Positive {
        /// The value given.
        got: f64,
    },
    /// A weight or penalty that must be finite and >= 0.
    #[error("must be finite and >= 0, got {got}")]
    NonNegative {
        /// The value given.
        got: f64,
    },
    /// A value that must be finite.
    #[error("must be finite, got {got}")]
    Finite {
        /// The value given.
        got: f64,
    },
    /// A value outside its interval.
    #[error("must be in {interval}, got {got}")]
    Within {
        /// The allowed values.
        interval: Interval,
        /// The value given.
        got: f64,
    },
    /// A `[low, high]` pair that is not increasing or leaves its interval.
    #[error("must be an increasing range within {interval}, got {got:?}")]
    IncreasingRange {
        /// Where both ends must lie.
        interval: Interval,
        /// The pair given.
        got: [f64; 2],
    },
    /// A list of widths or counts with a zero in it.
    #[error("every entry must be >= 1, got {got:?}")]
    EveryAtLeastOne {
        /// The list given.
        got: Vec<usize>,
    },
    /// A value that must divide another key's value.
    #[error("must be >= 1 and divide {other} = {value}, got {got}")]
    Divides {
        /// The other key.
        other: &'static str,
        /// Its value.
        value: usize,
        /// The value given.
        got: usize,
    },
    /// A list or name that must not be empty.
    #[error("must not be empty")]
    NotEmpty,
    /// A list with one entry per something, of the wrong length.
    #[error("needs one entry per {per} ({expected}), got {got}")]
    OnePer {
        /// What each entry belongs to.
        per: &'static str,
        /// How many there are.
        expected: usize,
        /// How many entries were given.
        got: usize,
    },
    /// Task indices that repeat or name no task.
    #[error("must list distinct tasks below {tasks}, got {got:?}")]
    DistinctTasks {
        /// How many tasks there are.
        tasks: usize,
        /// The list given.
        got: Vec<usize>,
    },
    /// A key-map entry that is not `FROM=TO`.
    #[error("entry {entry:?} is not FROM=TO")]
    KeyMapEntry {
        /// The entry given.
        entry: String,
    },
    /// A network of a kind that cannot fill this role.
    #[error("the {role} is {allowed}, got {got}")]
    NetworkKind {
        /// What the network is for (`encoder`, `column`).
        role: &'static str,
        /// The kinds that can.
        allowed: &'static str,
        /// The kind given.
        got: String,
    },

    // === Keys that go together ===
    /// A key that only has a meaning when another condition holds.
    #[error("needs {condition}")]
    Needs {
        /// The condition, naming the other key.
        condition: &'static str,
    },
    /// A key that is needed exactly when a condition holds.
    #[error("is needed by, and only by, {condition}")]
    OnlyWith {
        /// The condition, naming the other key.
        condition: &'static str,
    },
    /// An epoch outside the run.
    #[error("must be an epoch in {first}..={last}, got {got}")]
    Epoch {
        /// The first allowed epoch.
        first: usize,
        /// The last allowed epoch (the run's length).
        last: usize,
        /// The value given.
        got: usize,
    },
    /// Per-channel statistics of different lengths.
    #[error("needs one value per channel, as {other}: got {got} and {expected}")]
    SameChannels {
        /// The key it must match.
        other: &'static str,
        /// Its length.
        expected: usize,
        /// This key's length.
        got: usize,
    },

    // === Image transforms ===
    /// A `[data.transform]` on a dataset that is not an image folder.
    #[error(
        "streams photos of an image folder (dataset = \"image-folder\"); {dataset} is read into memory, fitted with data.resize, data.rgb, data.mean and data.std"
    )]
    TransformNeedsImageFolder {
        /// The dataset given.
        dataset: String,
    },
    /// An in-memory fitting key beside a streamed transform.
    #[error(
        "fits images held in memory; with data.transform, fit photos with its steps (resize, to-grey, normalize)"
    )]
    InMemoryOnly,
    /// A transform whose normalisation disagrees with `data.normalize`.
    #[error("{}", if *normalize {
        "has no normalize step but data.normalize = true: add { op = \"normalize\", statistics = \"imagenet\" } (or mean and std), or set data.normalize = false"
    } else {
        "normalises but data.normalize = false: remove its normalize step or set data.normalize = true"
    })]
    NormalizeMismatch {
        /// The value of `data.normalize`.
        normalize: bool,
    },
    /// Train and eval transforms that make images of different shapes.
    #[error(
        "makes images of {eval:?} but data.transform.train makes {train:?} (channels, height, width): the network takes one size"
    )]
    TransformShapes {
        /// The train transform's output shape.
        train: [usize; 3],
        /// The eval transform's output shape.
        eval: [usize; 3],
    },
    /// A transform that does not end in one fixed size.
    #[error(
        "photos come in many sizes, so the transform must end in a fixed size: add center-crop or random-resized-crop, or give resize a [height, width]"
    )]
    NoFixedSize,
    /// A geometric step after a colour step.
    #[error("geometric steps work on the decoded 8-bit image, so they come before {colour}")]
    GeometryAfterColour {
        /// The colour step before it.
        colour: &'static str,
    },
    /// A decoding step (to-grey, to-rgb) that is not first.
    #[error("decodes the photo, so it must be the first step")]
    DecodeFirst,
    /// A normalize step with neither named statistics nor both mean and std.
    #[error("needs either statistics (imagenet, inception) or both mean and std")]
    NormalizeStatistics,
    /// A normalize step whose mean or std does not have one value per channel.
    #[error("needs one mean and one std per channel ({channels}), got {mean} and {std}")]
    StatisticsPerChannel {
        /// The image's channels at that step.
        channels: usize,
        /// Values of mean given.
        mean: usize,
        /// Values of std given.
        std: usize,
    },
    /// A step's parameter that breaks its rule (the step's own key and rule).
    #[error("{parameter} {rule}")]
    StepParameter {
        /// The parameter (`size`, `scale`, `p`, `hue`).
        parameter: &'static str,
        /// The rule it breaks.
        rule: Box<Rule>,
    },
    /// A predict geometry whose crop exceeds its resize.
    #[error("must be >= crop >= 1, got resize {resize} and crop {crop}")]
    ResizeBelowCrop {
        /// The resize given.
        resize: usize,
        /// The crop given.
        crop: usize,
    },

    // === Strategies and networks that go together ===
    /// CPC without its network, or its network without CPC.
    #[error("CPC (strategy.method = \"cpc\") and a CPC network (model.type = \"cpc\") go together")]
    CpcPairing,
    /// A self-supervised method whose network does not fit it.
    #[error(
        "{method} needs a projected network over {inputs} feature vectors with {outputs} outputs (model.type = \"projected\", inputs = {inputs}, outputs = {outputs}){}",
        if *local { " and local heads on a CNN encoder (local = true)" } else { "" }
    )]
    SslNetwork {
        /// The method.
        method: String,
        /// The feature vectors it compares.
        inputs: usize,
        /// The projection's outputs.
        outputs: usize,
        /// Whether it needs AMDIM's local heads.
        local: bool,
    },
    /// AMDIM's local heads on a network without feature maps.
    #[error(
        "local heads (AMDIM) need a CNN encoder (its feature maps, `--model cnn`) and inputs = 1"
    )]
    LocalHeads,
    /// FitNets hints beside a DeiT distillation token.
    #[error(
        "a student with a distillation token learns the teacher through its distillation head; FitNets hints are not combined with it (set hint_weight = 0)"
    )]
    TokenWithHints,
    /// GradNorm with a task loss other than cross-entropy.
    #[error("GradNorm's closed-form gradient norms assume cross-entropy task losses")]
    GradnormLosses,
    /// Soft or cross-stitch sharing with fewer than two trained tasks.
    #[error("{architecture} sharing needs >= 2 trained tasks (a single-task baseline is hard)")]
    SharingTasks {
        /// The architecture's name.
        architecture: &'static str,
    },
    /// Multi-column networks given fewer than two columns or an empty one.
    #[error("needs >= 2 columns of >= 1 class, got {got:?}")]
    Columns {
        /// The classes per column given.
        got: Vec<usize>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_show_their_ends_and_refuse_nan() {
        assert_eq!(Interval::UNIT_OPEN.to_string(), "[0, 1)");
        assert_eq!(Interval::open_closed(0.0, 8.0).to_string(), "(0, 8]");
        assert!(Interval::UNIT_OPEN.contains(0.0));
        assert!(!Interval::UNIT_OPEN.contains(1.0));
        assert!(!Interval::open_closed(0.0, 8.0).contains(0.0));
        assert!(!Interval::PROBABILITY.contains(f64::NAN));
        assert!(matches!(
            Interval::PROBABILITY.check(1.5),
            Err(Rule::Within { got, .. }) if got == 1.5
        ));
    }

    #[test]
    fn violations_read_as_one_line_and_nest_under_a_parent() {
        let v = Violation::new("temperature", positive(-1.0).unwrap_err()).under("strategy.");
        assert_eq!(v.key, "strategy.temperature");
        assert_eq!(
            v.to_string(),
            "config key `strategy.temperature`: must be finite and > 0, got -1"
        );
        assert!(non_negative(f64::INFINITY).is_err());
        assert!(at_least(0, 1).is_err() && at_least(2, 2).is_ok());
        assert_eq!(shown(0.1f32).to_string(), "0.1");
        let step = Rule::StepParameter {
            parameter: "p",
            rule: Box::new(Interval::PROBABILITY.check(2.0).unwrap_err()),
        };
        assert_eq!(step.to_string(), "p must be in [0, 1], got 2");
    }
}
