//! `mentor params`.

use burn::tensor::Device;
use clap::Args;
use mentor::models::param_infos;

use super::args::ConfigArgs;

/// Arguments of `mentor params`.
#[derive(Debug, Args)]
pub struct ParamsArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Prints one line per parameter: name, shape, and whether it is trainable.
pub fn run(args: ParamsArgs) -> anyhow::Result<()> {
    let config = args.config.resolve()?;
    let shape_classes = match config.data.dataset {
        mentor::data::DataSource::Digits => ([1, 8, 8], 10),
        mentor::data::DataSource::Mnist | mentor::data::DataSource::FashionMnist => {
            ([1, 28, 28], 10)
        }
        mentor::data::DataSource::Cifar10 => ([3, 32, 32], 10),
        mentor::data::DataSource::Cifar100 => ([3, 32, 32], 100),
        mentor::data::DataSource::ImageFolder => {
            let d = mentor::data::prepare_data(&config.data, config.seed)?;
            (d.train.shape, d.train.num_classes)
        }
    };
    let network = config
        .model
        .init(shape_classes.0, shape_classes.1, &Device::flex());
    let mut total = 0;
    for p in param_infos(&network) {
        let kind = if p.trainable { "" } else { "  (buffer)" };
        println!("{:<40} {:?}{kind}", p.name, p.shape);
        if p.trainable {
            total += p.numel();
        }
    }
    println!("{total} trainable parameters");
    Ok(())
}
