//! Listing a network's parameters by their stable names, and the patterns that select
//! them (`[[groups]]`, `init.retrain`, `init.load_only`).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use super::Network;

/// One parameter tensor of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Stable name, e.g. `backbone.conv1.weight` (without the network kind).
    pub name: String,
    /// Burn's id of the parameter (restored from checkpoints).
    pub id: ParamId,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Whether an optimiser trains it (batch-norm running statistics are buffers, not
    /// trainable parameters).
    pub trainable: bool,
}

impl ParamInfo {
    /// Number of scalars in the tensor.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The stable name of the place a module visitor or mapper is at: the field names from
/// the network down, enum variants left out (the `Network` kind `Mlp`, `Cnn`, ...; a
/// projected network's backbone kind; a ResNet block's kind), so names read
/// `backbone.layer1.0.conv1.weight` whatever the variants. Every walk over a network
/// that names parameters (listing, import, freezing) goes through it, so they agree.
#[derive(Debug, Default)]
pub struct ModulePath(Vec<Option<String>>);

impl ModulePath {
    /// Steps into the field `name` of a container of `container_type` (Burn's
    /// `enter_module` arguments).
    pub fn enter(&mut self, name: &str, container_type: &str) {
        let variant = container_type.starts_with("Enum:");
        self.0.push((!variant).then(|| name.to_string()));
    }

    /// Steps back out.
    pub fn exit(&mut self) {
        self.0.pop();
    }

    /// The dotted name of the current place.
    pub fn name(&self) -> String {
        self.0
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(".")
    }
}

#[derive(Default)]
struct Collector {
    path: ModulePath,
    out: Vec<ParamInfo>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.name();
        let trainable = !name.contains("running_");
        self.out.push(ParamInfo {
            name,
            id: param.id,
            shape: param.val().dims().to_vec(),
            trainable,
        });
    }
}

/// Number of scalars in `network`'s trainable parameters (frozen ones included, buffers
/// such as batch-norm running statistics not).
pub fn trainable_count(network: &Network) -> usize {
    param_infos(network)
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.numel())
        .sum()
}

/// Every float parameter (and buffer) of `network`, in module order.
pub fn param_infos(network: &Network) -> Vec<ParamInfo> {
    let mut c = Collector::default();
    network.visit(&mut c);
    c.out
}

/// Every float tensor of `module`, flattened, in module order. On an autodiff module they
/// stay in the graph (penalties on weights differentiate through them).
pub fn flat_parameters<M: Module>(module: &M) -> Vec<Tensor<1>> {
    struct Flat(Vec<Tensor<1>>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().flatten(0, D - 1));
        }
    }
    let mut flat = Flat(Vec::new());
    module.visit(&mut flat);
    flat.0
}

/// Glob match with `*` (any run, possibly empty) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a rule's pattern selects a parameter: the glob matches its full name, or a
/// module above it (`backbone.conv1` selects `backbone.conv1.weight`).
pub fn pattern_selects(pattern: &str, name: &str) -> bool {
    glob_match(pattern, name) || glob_match(&format!("{pattern}.*"), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_semantics() {
        assert!(glob_match("backbone.conv*", "backbone.conv1.weight"));
        assert!(glob_match("*.bias", "head.bias"));
        assert!(!glob_match("*.bias", "head.weight"));
        assert!(glob_match("backbone.fc.?.weight", "backbone.fc.0.weight"));
        assert!(pattern_selects("head", "head.weight"));
        assert!(!pattern_selects("head", "header.weight"));
    }
}
