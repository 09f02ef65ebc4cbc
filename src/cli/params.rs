//! `mentor params`: a network's parameters, by mentor's name (what parameter groups and
//! `--freeze` address) and by the name and layout its PyTorch implementation uses.

use burn::tensor::Device;
use clap::Args;
use mentor::models::param_infos;
use mentor::models::weights::pytorch_name;

use super::args::ConfigArgs;

/// Arguments of `mentor params`.
#[derive(Debug, Args)]
pub struct ParamsArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Classes of the classifier (default: the dataset's; an ImageNet family without
    /// --dataset: its card's 1000).
    #[arg(long)]
    classes: Option<usize>,
    /// Input channels, height and width as C,H,W (default: the dataset's; an ImageNet
    /// family without --dataset: its card's 3,224,224).
    #[arg(long, value_delimiter = ',', num_args = 1..=3)]
    input: Option<Vec<usize>>,
}

/// Prints one line per parameter: mentor's name, PyTorch's name and shape, and whether
/// it is a buffer; then the trainable count (PyTorch's `sum(p.numel() for p in
/// m.parameters())`).
pub fn run(args: ParamsArgs) -> anyhow::Result<()> {
    let config = args.config.resolve()?;
    let card = config
        .model
        .card()
        .filter(|_| args.config.dataset.is_none());
    let (mut shape, mut classes) = match (&card, config.data.dataset) {
        (Some(card), _) => (card.input, card.classes),
        (None, mentor::data::DataSource::Digits) => ([1, 8, 8], 10),
        (None, mentor::data::DataSource::Mnist | mentor::data::DataSource::FashionMnist) => {
            ([1, 28, 28], 10)
        }
        (None, mentor::data::DataSource::Cifar10) => ([3, 32, 32], 10),
        (None, mentor::data::DataSource::Cifar100) => ([3, 32, 32], 100),
        (None, mentor::data::DataSource::ImageFolder) => {
            let d = mentor::data::prepare_data(&config.data, config.seed)?;
            (d.train.shape, d.train.num_classes)
        }
    };
    if let Some(c) = args.classes {
        anyhow::ensure!(c >= 1, "--classes must be at least 1");
        classes = c;
    }
    if let Some(input) = &args.input {
        anyhow::ensure!(
            input.len() == 3 && input.iter().all(|&d| d >= 1),
            "--input: needs C,H,W, each at least 1, got {input:?}"
        );
        shape = [input[0], input[1], input[2]];
    }
    config
        .model
        .check_fits(shape, classes, mentor::engine::device::host_memory_bytes())
        .map_err(|rule| anyhow::anyhow!("--model {}: {rule}", config.model.kind()))?;
    let network = config.model.init(shape, classes, &Device::flex());
    println!(
        "{} for {}x{}x{} inputs and {classes} classes",
        config.model.kind(),
        shape[0],
        shape[1],
        shape[2]
    );
    println!("{:<48} {:<44} PyTorch shape", "mentor name", "PyTorch name");
    let mut total = 0;
    for p in param_infos(&network) {
        let (torch, torch_shape) = pytorch_name(&network, &p);
        let kind = if p.trainable { "" } else { "  (buffer)" };
        println!("{:<48} {:<44} {torch_shape:?}{kind}", p.name, torch);
        if p.trainable {
            total += p.numel();
        }
    }
    println!("{total} trainable parameters");
    Ok(())
}
