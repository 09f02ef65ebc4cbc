//! Frozen means frozen: the parameters of groups that are not trained this epoch take no
//! part in autodiff, so the backward pass stops at the deepest trainable layer, and the
//! batch norms whose weights are all frozen run in inference mode, their running
//! statistics unchanged (timm's `freeze` swaps in `FrozenBatchNorm2d`; Keras runs a
//! `trainable = False` batch norm in inference mode). A group rule's `freeze_bn = false`
//! keeps updating the statistics of its frozen batch norms, as a frozen PyTorch module
//! left in training mode does.

use std::collections::{HashMap, HashSet};

use burn::module::{Flag, Module, ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;

use super::groups::ParamGroups;
use crate::models::{ModulePath, Network, ParamInfo, param_infos};

/// The parameters and layers held fixed during one epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrozenSet {
    /// Parameters that take no gradient (frozen groups and zero multipliers).
    pub params: HashSet<ParamId>,
    /// Modules (by parameter-name prefix, e.g. `backbone.bn1`) whose batch norm runs in
    /// inference mode: every trainable parameter of theirs is frozen and their group
    /// keeps `freeze_bn`.
    pub modules: HashSet<String>,
}

impl FrozenSet {
    /// What `groups` (as they stand this epoch) hold fixed in a network with `params`.
    pub fn of(groups: &ParamGroups, params: &[ParamInfo]) -> Self {
        let trained: HashSet<ParamId> = groups
            .trained()
            .flat_map(|g| g.ids.iter().copied())
            .collect();
        let keeps_statistics: HashSet<ParamId> = groups
            .groups
            .iter()
            .filter(|g| g.freeze_bn)
            .flat_map(|g| g.ids.iter().copied())
            .collect();
        let mut frozen = FrozenSet::default();
        // Per module: whether every trainable parameter of it is frozen with freeze_bn.
        let mut modules: HashMap<&str, bool> = HashMap::new();
        for p in params.iter().filter(|p| p.trainable) {
            let is_frozen = !trained.contains(&p.id);
            if is_frozen {
                frozen.params.insert(p.id);
            }
            let module = parent(&p.name);
            let fixed = is_frozen && keeps_statistics.contains(&p.id);
            modules
                .entry(module)
                .and_modify(|all| *all &= fixed)
                .or_insert(fixed);
        }
        frozen.modules = modules
            .into_iter()
            .filter(|(_, all)| *all)
            .map(|(m, _)| m.to_string())
            .collect();
        frozen
    }

    /// `network` with gradients required exactly by its trained parameters, and the
    /// training flags (batch norm's) of the modules that hold parameters set to train
    /// unless the module is frozen. Flags of modules without parameters (dropout) are
    /// left as they are.
    pub fn apply(&self, network: Network) -> Network {
        let owners: HashSet<String> = param_infos(&network)
            .iter()
            .filter(|p| p.trainable)
            .map(|p| parent(&p.name).to_string())
            .collect();
        let mut mapper = Freezer {
            frozen: self,
            owners: &owners,
            path: ModulePath::default(),
        };
        network.map(&mut mapper)
    }
}

/// The module a parameter name belongs to: `backbone.bn1.gamma` -> `backbone.bn1`.
fn parent(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(m, _)| m)
}

struct Freezer<'a> {
    frozen: &'a FrozenSet,
    owners: &'a HashSet<String>,
    path: ModulePath,
}

impl ModuleMapper for Freezer<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.name().contains("running_") {
            // A buffer: never differentiated, and its value is the batch norm's to keep.
            return param;
        }
        let trains = !self.frozen.params.contains(&param.id);
        param.set_require_grad(trains)
    }

    fn map_flag(&mut self, flag: Param<Flag>) -> Param<Flag> {
        let name = self.path.name();
        let module = parent(&name);
        if !self.owners.contains(module) {
            return flag;
        }
        flag.with_value(!self.frozen.modules.contains(module))
    }
}

#[cfg(test)]
mod tests {
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::*;
    use crate::engine::groups::GroupRule;
    use crate::engine::seeded_init;
    use crate::models::{ModelConfig, ResNetConfig};

    fn frozen_resnet(freeze_bn: bool) -> (Network, ParamGroups) {
        let device = Device::flex().autodiff();
        let config = ModelConfig::Resnet(ResNetConfig {
            width: 4,
            ..ResNetConfig::default()
        });
        let network = seeded_init(&config, [1, 8, 8], 3, &device, 7);
        let rules = [GroupRule {
            pattern: "backbone".into(),
            lr_mult: 1.0,
            frozen: true,
            unfreeze_at: Some(2),
            freeze_bn,
        }];
        let groups = ParamGroups::resolve(&rules, &param_infos(&network)).unwrap();
        (network, groups)
    }

    fn ids(groups: &ParamGroups, frozen: bool) -> Vec<ParamId> {
        groups
            .groups
            .iter()
            .filter(|g| g.frozen == frozen)
            .flat_map(|g| g.ids.clone())
            .collect()
    }

    fn gradients(network: &Network, wanted: &[ParamId]) -> usize {
        let device = crate::engine::module_device(network);
        let images = Tensor::<4>::random([4, 1, 8, 8], Distribution::Default, &device);
        let mut grads = network.forward(images).powi_scalar(2).mean().backward();
        GradientsParams::from_params(&mut grads, network, wanted).len()
    }

    #[test]
    fn the_backward_pass_gives_frozen_parameters_no_gradient() {
        let (network, groups) = frozen_resnet(true);
        let (frozen, trained) = (ids(&groups, true), ids(&groups, false));
        assert!(frozen.len() > 10 && !trained.is_empty());
        // Before freezing, every parameter gets a gradient.
        assert_eq!(gradients(&network, &frozen), frozen.len());
        let set = FrozenSet::of(&groups.at_epoch(1), &param_infos(&network));
        let network = set.apply(network);
        assert_eq!(gradients(&network, &frozen), 0);
        assert_eq!(gradients(&network, &trained), trained.len());
        // At its unfreeze_at epoch the group trains again, batch norms included.
        let thawed = FrozenSet::of(&groups.at_epoch(2), &param_infos(&network));
        assert!(thawed.params.is_empty() && thawed.modules.is_empty());
        let network = thawed.apply(network);
        assert_eq!(gradients(&network, &frozen), frozen.len());
    }

    #[test]
    fn batch_norms_of_frozen_groups_are_fixed_unless_freeze_bn_is_false() {
        let (network, groups) = frozen_resnet(true);
        let set = FrozenSet::of(&groups.at_epoch(1), &param_infos(&network));
        assert!(
            set.modules.contains("backbone.stem_bn"),
            "{:?}",
            set.modules
        );
        assert!(set.modules.iter().all(|m| m.starts_with("backbone.")));
        let (network, groups) = frozen_resnet(false);
        let set = FrozenSet::of(&groups.at_epoch(1), &param_infos(&network));
        assert!(set.modules.is_empty() && !set.params.is_empty());
    }
}
