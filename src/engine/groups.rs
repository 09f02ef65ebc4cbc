//! Parameter groups by name pattern: which parameters are frozen and which learning-rate
//! multiplier each trainable one gets. Every trainable parameter lands in exactly one
//! group: the one rule that matches it, or the default group (multiplier 1) when none
//! does. A parameter matched by two rules, or a rule that matches nothing, is an error.

use burn::module::ParamId;

use serde::{Deserialize, Serialize};

use crate::models::{ParamInfo, pattern_selects};

/// One parameter-group rule (`[[groups]]`): the parameters whose names match `pattern`
/// are frozen, or trained at `lr_mult` times the base rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// Glob over parameter names (`*` any run of characters, `?` one); a pattern also
    /// matches everything below a module it names (`head` matches `head.weight`).
    pub pattern: String,
    /// Multiplier of the base learning rate.
    #[serde(default = "one")]
    pub lr_mult: f64,
    /// Keep these parameters fixed.
    #[serde(default)]
    pub frozen: bool,
    /// Gradual unfreezing: a frozen group starts training (at `lr_mult`) from this
    /// 1-based epoch on, as Lightning's `BackboneFinetuning` does. Being a function of
    /// the epoch alone, a resumed run restores it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfreeze_at: Option<usize>,
    /// While the group is frozen, its batch norms run in inference mode with their
    /// running statistics unchanged (default); `false` keeps updating the statistics from
    /// each batch, as a frozen PyTorch module left in training mode does.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub freeze_bn: bool,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}

fn is_yes(value: &bool) -> bool {
    *value
}

/// A rule that cannot be applied to the network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GroupError {
    /// A rule matches no parameter.
    #[error("group pattern `{pattern}` matches no parameter (names look like `{example}`)")]
    NoMatch {
        /// The pattern.
        pattern: String,
        /// One real parameter name, as a hint.
        example: String,
    },
    /// No parameter would ever be trained: every group is frozen for good or has a
    /// zero multiplier (`--freeze '*'` freezes the head too).
    #[error(
        "nothing to train: the group rules {patterns} freeze every parameter (leave the head, e.g. `head`, out of the frozen patterns, or give --unfreeze-at)"
    )]
    NothingToTrain {
        /// The rules' patterns, quoted.
        patterns: String,
    },
    /// Two rules claim the same parameter.
    #[error("parameter `{param}` is matched by two group patterns, `{first}` and `{second}`")]
    Overlap {
        /// The parameter.
        param: String,
        /// The first rule's pattern.
        first: String,
        /// The second rule's pattern.
        second: String,
    },
}

/// One resolved group.
#[derive(Debug, Clone)]
pub struct ParamGroupSpec {
    /// The rule's pattern, or `(default)`.
    pub label: String,
    /// Multiplier of the scheduled learning rate.
    pub lr_mult: f64,
    /// Whether the group is held fixed (until `unfreeze_at`, if set).
    pub frozen: bool,
    /// The 1-based epoch from which a frozen group trains.
    pub unfreeze_at: Option<usize>,
    /// Whether its batch norms run in inference mode while it is frozen.
    pub freeze_bn: bool,
    /// Names of its parameters.
    pub names: Vec<String>,
    /// Ids of its parameters.
    pub ids: Vec<ParamId>,
}

/// All groups of a network; the default group comes last.
#[derive(Debug, Clone)]
pub struct ParamGroups {
    /// The groups, rule order, then the default group if it has members.
    pub groups: Vec<ParamGroupSpec>,
}

impl ParamGroups {
    /// Assigns each trainable parameter of `params` to a group.
    pub fn resolve(rules: &[GroupRule], params: &[ParamInfo]) -> Result<Self, GroupError> {
        let trainable: Vec<&ParamInfo> = params.iter().filter(|p| p.trainable).collect();
        let mut owner: Vec<Option<usize>> = vec![None; trainable.len()];
        let mut groups = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            let mut spec = ParamGroupSpec {
                label: rule.pattern.clone(),
                lr_mult: rule.lr_mult,
                frozen: rule.frozen,
                unfreeze_at: rule.unfreeze_at,
                freeze_bn: rule.freeze_bn,
                names: Vec::new(),
                ids: Vec::new(),
            };
            for (i, p) in trainable.iter().enumerate() {
                if pattern_selects(&rule.pattern, &p.name) {
                    if let Some(prev) = owner[i] {
                        return Err(GroupError::Overlap {
                            param: p.name.clone(),
                            first: rules[prev].pattern.clone(),
                            second: rule.pattern.clone(),
                        });
                    }
                    owner[i] = Some(r);
                    spec.names.push(p.name.clone());
                    spec.ids.push(p.id);
                }
            }
            if spec.ids.is_empty() {
                return Err(GroupError::NoMatch {
                    pattern: rule.pattern.clone(),
                    example: trainable
                        .first()
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                });
            }
            groups.push(spec);
        }
        let rest: Vec<&&ParamInfo> = trainable
            .iter()
            .zip(&owner)
            .filter(|(_, o)| o.is_none())
            .map(|(p, _)| p)
            .collect();
        if !rest.is_empty() {
            groups.push(ParamGroupSpec {
                label: "(default)".into(),
                lr_mult: 1.0,
                frozen: false,
                unfreeze_at: None,
                freeze_bn: true,
                names: rest.iter().map(|p| p.name.clone()).collect(),
                ids: rest.iter().map(|p| p.id).collect(),
            });
        }
        let trains = |g: &ParamGroupSpec| g.lr_mult > 0.0 && (!g.frozen || g.unfreeze_at.is_some());
        if !groups.is_empty() && !groups.iter().any(trains) {
            let patterns: Vec<String> = rules.iter().map(|r| format!("`{}`", r.pattern)).collect();
            return Err(GroupError::NothingToTrain {
                patterns: patterns.join(", "),
            });
        }
        Ok(Self { groups })
    }

    /// The groups as they stand during 1-based `epoch`: frozen groups whose
    /// `unfreeze_at` has come are trainable.
    pub fn at_epoch(&self, epoch: usize) -> ParamGroups {
        let mut groups = self.groups.clone();
        for g in &mut groups {
            if g.unfreeze_at.is_some_and(|u| epoch >= u) {
                g.frozen = false;
            }
        }
        ParamGroups { groups }
    }

    /// The groups an optimiser steps (not frozen, multiplier above 0).
    pub fn trained(&self) -> impl Iterator<Item = &ParamGroupSpec> {
        self.groups.iter().filter(|g| !g.frozen && g.lr_mult > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, trainable: bool) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            id: ParamId::new(),
            shape: vec![1],
            trainable,
        }
    }

    #[test]
    fn every_trainable_param_lands_in_exactly_one_group() {
        let params = vec![
            info("backbone.conv1.weight", true),
            info("backbone.conv1.bias", true),
            info("backbone.bn.running_mean", false),
            info("head.weight", true),
        ];
        let rules = vec![GroupRule {
            pattern: "backbone.*".into(),
            lr_mult: 0.1,
            frozen: false,
            unfreeze_at: None,
            freeze_bn: true,
        }];
        let g = ParamGroups::resolve(&rules, &params).unwrap();
        assert_eq!(g.groups.len(), 2);
        assert_eq!(g.groups[0].names.len(), 2);
        assert_eq!(g.groups[1].names, vec!["head.weight"]);
        let total: usize = g.groups.iter().map(|s| s.ids.len()).sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn frozen_groups_unfreeze_at_their_epoch() {
        let params = vec![info("backbone.w", true), info("head.w", true)];
        let rules = vec![GroupRule {
            pattern: "backbone".into(),
            lr_mult: 0.1,
            frozen: true,
            unfreeze_at: Some(3),
            freeze_bn: true,
        }];
        let g = ParamGroups::resolve(&rules, &params).unwrap();
        let trained = |e: usize| -> Vec<String> {
            g.at_epoch(e).trained().map(|s| s.label.clone()).collect()
        };
        assert_eq!(trained(2), ["(default)"]);
        assert_eq!(trained(3), ["backbone", "(default)"]);
    }

    #[test]
    fn overlap_and_no_match_are_errors_naming_the_pattern() {
        let params = vec![info("head.weight", true)];
        let rule = |p: &str| GroupRule {
            pattern: p.into(),
            lr_mult: 1.0,
            frozen: true,
            unfreeze_at: None,
            freeze_bn: true,
        };
        let e = ParamGroups::resolve(&[rule("head"), rule("*.weight")], &params).unwrap_err();
        assert!(e.to_string().contains("`head` and `*.weight`"), "{e}");
        let e = ParamGroups::resolve(&[rule("tail")], &params).unwrap_err();
        assert!(e.to_string().contains("`tail`"), "{e}");
    }

    #[test]
    fn freezing_every_parameter_is_refused() {
        let params = [info("backbone.w", true), info("head.w", true)];
        let rule = |pattern: &str, frozen, unfreeze_at| GroupRule {
            pattern: pattern.into(),
            lr_mult: 1.0,
            frozen,
            unfreeze_at,
            freeze_bn: true,
        };
        let e = ParamGroups::resolve(&[rule("*", true, None)], &params).unwrap_err();
        assert!(matches!(e, GroupError::NothingToTrain { .. }), "{e}");
        assert!(ParamGroups::resolve(&[rule("*", true, Some(2))], &params).is_ok());
        assert!(ParamGroups::resolve(&[rule("backbone", true, None)], &params).is_ok());
    }
}
