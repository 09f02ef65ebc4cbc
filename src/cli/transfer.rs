//! `mentor transfer`: train on a target task starting from a pretrained checkpoint, with
//! a policy per layer: freeze, fine-tune at a reduced rate, or retrain.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use mentor::engine::groups::GroupRule;

use super::args::{ConfigArgs, RunArgs, run_and_report};

/// Arguments of `mentor transfer`.
#[derive(Debug, Args)]
#[group(id = "frozen", args = ["freeze", "freeze_through"], multiple = true)]
pub struct TransferArgs {
    /// The pretrained weights: a mentor checkpoint, or a .safetensors file with PyTorch
    /// names and layouts; copied by name where shapes fit; the head is re-initialised.
    #[arg(long)]
    pretrained: PathBuf,
    /// Keep parameters matching this pattern fixed (repeatable), e.g. 'backbone.conv*'.
    #[arg(long, value_name = "PATTERN")]
    freeze: Vec<String>,
    /// Freeze a family's layers from its stem through this layer group of its model
    /// card (fastai's `freeze_to`), e.g. 'layer3' of a ResNet or 'stage4' of a MobileNet;
    /// `mentor models` lists the groups.
    #[arg(long, value_name = "GROUP")]
    freeze_through: Option<String>,
    /// Fine-tune parameters matching PATTERN at MULT times the base rate (repeatable),
    /// e.g. 'backbone.fc=0.1'.
    #[arg(long, value_name = "PATTERN=MULT")]
    finetune: Vec<String>,
    /// Gradual unfreezing: the --freeze groups start training at this 1-based epoch.
    #[arg(long, value_name = "EPOCH", requires = "frozen")]
    unfreeze_at: Option<usize>,
    /// Keep updating the batch-norm running statistics of the --freeze groups from each
    /// batch (by default a frozen batch norm runs in inference mode, statistics fixed).
    #[arg(long, requires = "frozen")]
    update_frozen_bn: bool,
    /// Re-initialise parameters matching this pattern and train them at the full rate.
    #[arg(long, value_name = "PATTERN")]
    retrain: Vec<String>,
    /// Copy only parameters matching this pattern (repeatable), e.g. 'backbone'.
    #[arg(long, value_name = "PATTERN")]
    load_only: Vec<String>,
    /// Rename keys of a .safetensors or PyTorch .pt/.pth file: FROM=TO prefix rewrite
    /// (repeatable).
    #[arg(long, value_name = "FROM=TO")]
    key_map: Vec<String>,
    /// Copy the pretrained head as well (same classes on both tasks).
    #[arg(long)]
    keep_head: bool,
    /// The target run's config (data, model, optimiser...).
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs `mentor transfer`.
pub fn run(args: TransferArgs) -> anyhow::Result<()> {
    // The flags add to what the config file and `--set` say (a `--set
    // init.keep_head=true` or a file's `key_map` stays), and the whole is validated once.
    let mut config = args.config.resolve_unchecked()?;
    config.init.pretrained = Some(args.pretrained);
    config.init.retrain.extend(args.retrain);
    config.init.keep_head |= args.keep_head;
    config.init.load_only.extend(args.load_only);
    config.init.key_map.extend(args.key_map);
    let mut frozen = args.freeze;
    if let Some(group) = &args.freeze_through {
        let card = config.model.card().with_context(|| {
            format!(
                "--freeze-through {group}: model.type {:?} has no model card with layer groups (the ImageNet families have: see mentor models); name its layers with --freeze PATTERN",
                config.model.kind()
            )
        })?;
        let modules = card
            .modules_through(group)
            .map_err(|e| anyhow::anyhow!("--freeze-through: {e}"))?;
        frozen.extend(modules);
    }
    for pattern in frozen {
        config.groups.push(GroupRule {
            pattern,
            lr_mult: 1.0,
            frozen: true,
            unfreeze_at: args.unfreeze_at,
            freeze_bn: !args.update_frozen_bn,
        });
    }
    for spec in args.finetune {
        let (pattern, mult) = spec
            .rsplit_once('=')
            .with_context(|| format!("--finetune {spec:?}: expected PATTERN=MULT"))?;
        let lr_mult: f64 = mult
            .parse()
            .with_context(|| format!("--finetune {spec:?}: {mult:?} is not a number"))?;
        config.groups.push(GroupRule {
            pattern: pattern.to_string(),
            lr_mult,
            frozen: false,
            unfreeze_at: None,
            freeze_bn: true,
        });
    }
    config.validate()?;
    run_and_report(&config, &args.run, &[])?;
    Ok(())
}
