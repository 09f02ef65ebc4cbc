//! # mentor
//!
//! Training strategies that reuse what one network already knows, on one engine:
//!
//! | strategy | status |
//! | --- | --- |
//! | supervised training (the base of all) | [`engine`] |
//! | transfer learning | [`transfer`] |
//! | knowledge distillation | [`distill`] |
//! | continual learning | [`continual`] |
//! | multitask learning | [`multitask`] (hard sharing, fixed / DWA weights) |
//! | self-supervised learning | [`ssl`] (losses; augmentations in [`data::augment`]) |
//!
//! Every strategy is three choices over the same [`engine`]: which networks
//! ([`models`]), what each step minimises ([`engine::Objective`]) and which parameters
//! move how fast ([`engine::groups`]). Data come from [`data`]; a run is described by one
//! [`config::RunConfig`], whose `[strategy]` ([`strategy::StrategyConfig`]) picks the
//! objective and whose `[init]` ([`transfer::InitConfig`]) picks the starting weights.

#![warn(missing_docs)]

pub mod continual;
#[cfg(test)]
pub(crate) mod damage;
pub mod data;
pub mod distill;
pub mod engine;
pub mod kernels;
pub mod losses;
pub mod models;
pub mod multitask;
pub mod report;
pub mod rules;
pub mod run;
pub mod ssl;
pub mod transfer;
