//! Command-line interface: one module per command.

mod advise;
mod args;
mod augment;
mod bench;
mod continual;
mod data;
mod demo;
mod distill;
mod eval;
mod export;
mod footprint;
pub mod interrupt;
pub mod job;
mod knn;
mod models;
mod multitask;
mod params;
mod plot_sweep;
mod predict;
mod ssl;
mod summarize;
mod train;
mod transfer;

use clap::{Parser, Subcommand};

/// mentor: training strategies that reuse what a network already knows.
#[derive(Debug, Parser)]
#[command(name = "mentor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a network (supervised) and write a run directory.
    #[command(after_help = "Examples:\n  \
        mentor train --dataset digits --model mlp --epochs 20 --out runs/mlp\n  \
        mentor train --dataset mnist --data-dir ../shared/datasets --model cnn --epochs 1 --set optim.type=sgd --set lr=0.05 --out runs/cnn\n  \
        mentor train --config examples/digits-mlp.toml --out runs/a\n  \
        mentor train --config examples/digits-mlp.toml --out runs/a --resume")]
    Train(train::TrainArgs),
    /// Transfer a pretrained network to a new task: freeze, fine-tune or retrain by layer.
    #[command(after_help = "Examples:\n  \
        mentor train --dataset digits --model cnn --set data.classes=[0,1,2,3,4] --out runs/source\n  \
        mentor transfer --pretrained runs/source/checkpoints/best.ckpt --dataset digits --model cnn \\\n    \
        --set data.classes=[5,6,7,8,9] --freeze 'backbone.conv*' --finetune 'backbone.fc=0.1' --out runs/target")]
    Transfer(transfer::TransferArgs),
    /// Name the transfer quadrant of a target set (size x similarity) and recommend a policy.
    #[command(after_help = "Example:\n  \
        mentor advise --pretrained runs/source/checkpoints/best.ckpt --model cnn --set data.classes=[5,6,7,8,9] \\\n    \
        --set data.per_class=20 --write-config advice.toml")]
    Advise(advise::AdviseArgs),
    /// Distil a trained teacher into a (smaller) student network.
    #[command(after_help = "Examples:\n  \
        mentor train --dataset digits --model cnn --epochs 15 --out runs/teacher\n  \
        mentor distill --teacher runs/teacher/checkpoints/best.ckpt --model mlp --set model.hidden=[32] --temperature 4 --lambda 0.9 --out runs/student")]
    Distill(distill::DistillArgs),
    /// Learn a sequence of tasks without forgetting (Split / Permuted MNIST, task-, domain-
    /// and class-incremental; fine-tuning, feature extraction, joint, LwF, EWC, replay).
    #[command(after_help = "Examples:\n  \
        mentor continual --dataset mnist --data-dir ../shared/datasets --setting class-il --method lwf --out runs/cl-lwf\n  \
        mentor continual --dataset mnist --data-dir ../shared/datasets --method ewc --set strategy.method.lambda=1e9 --out runs/cl-ewc\n  \
        mentor continual --dataset digits --iterations 200 --method replay --set strategy.method.buffer_size=200 --out runs/cl-digits")]
    Continual(continual::ContinualArgs),
    /// Train one network on several tasks at once (hard sharing; fixed or DWA weights).
    #[command(after_help = "Examples:\n  \
        mentor multitask --dataset mnist --data-dir ../shared/datasets --benchmark multi-digits --model cnn --epochs 10 --task 0 --out runs/left\n  \
        mentor multitask --dataset mnist --data-dir ../shared/datasets --benchmark multi-digits --model cnn --epochs 10 --task 1 --out runs/right\n  \
        mentor multitask --dataset mnist --data-dir ../shared/datasets --benchmark multi-digits --model cnn --epochs 10 --weighting dwa \\\n    \
        --baseline runs/left --baseline runs/right --out runs/mtl")]
    Multitask(multitask::MultitaskArgs),
    /// What an image folder holds: classes, counts, sizes, unreadable files, memory, speed.
    #[command(
        after_help = "Example:\n  mentor data inspect --dataset image-folder --data-dir photos --limit 500"
    )]
    Data(data::DataArgs),
    /// Write a grid of augmented views of training images (check augmentations by eye).
    #[command(after_help = "Examples:\n  \
        mentor augment --dataset digits --out runs/augment.png\n  \
        mentor augment --dataset mnist --data-dir ../shared/datasets --aug crop_scale=[0.2,1.0] --aug flip=0.0 --out grid.png")]
    Augment(augment::AugmentArgs),
    /// Self-supervised learning: pretrain an encoder without labels (SimCLR, MoCo,
    /// relative position, rotation), then probe it at 1% / 10% / 100% of the labels.
    #[command(after_help = "Examples:\n  \
        mentor ssl pretrain --method simclr --dataset mnist --data-dir ../shared/datasets --model cnn --epochs 3 --batch-size 256 --out runs/simclr\n  \
        mentor ssl pretrain --method moco --dataset digits --model cnn --epochs 5 --out runs/moco\n  \
        mentor ssl eval --checkpoint runs/simclr/checkpoints/last.ckpt --fractions 0.01,0.1,1 --out runs/simclr/probe.json\n  \
        mentor ssl eval --checkpoint runs/simclr/checkpoints/last.ckpt --random-init")]
    Ssl(ssl::SslArgs),
    /// Weighted kNN accuracy (k = 200, cosine, T = 0.1) of a checkpoint's frozen features.
    #[command(
        after_help = "Example:\n  mentor knn --checkpoint runs/mlp/checkpoints/best.ckpt --set data.per_class=10"
    )]
    Knn(knn::KnnArgs),
    /// Evaluate a checkpoint on its run's test (and validation) data.
    #[command(after_help = "Example:\n  mentor eval --checkpoint runs/mlp/checkpoints/best.ckpt")]
    Eval(eval::EvalArgs),
    /// Train and evaluate each strategy on the embedded digits set; print a table.
    #[command(after_help = "Example:\n  mentor demo")]
    Demo(demo::DemoArgs),
    /// Measure training throughput of standard workloads (median samples/s, peak memory).
    #[command(after_help = "Examples:\n  mentor bench\n  mentor bench cnn-step --json")]
    Bench(bench::BenchArgs),
    /// Export a checkpoint's weights as safetensors with PyTorch names and layouts.
    #[command(
        after_help = "Example:\n  mentor export --checkpoint runs/mlp/checkpoints/best.ckpt --out mlp.safetensors --reference mlp-ref.safetensors"
    )]
    Export(export::ExportArgs),
    /// A pretrained network's top classes for photos (ImageNet's names by default).
    #[command(
        after_help = "Example:\n  mentor predict --pretrained efficientnet-lite0-57934424.pth --model efficientnet-lite0 --image cat.jpg cup.png"
    )]
    Predict(predict::PredictArgs),
    /// Deployment cost of trained networks: parameters, size, MFLOPs, CPU latency.
    #[command(
        after_help = "Example:\n  mentor footprint runs/teacher/checkpoints/best.ckpt runs/student/checkpoints/best.ckpt"
    )]
    Footprint(footprint::FootprintArgs),
    /// Plot runs' test accuracy against a swept config key.
    #[command(
        after_help = "Example:\n  mentor plot-sweep --key strategy.temperature --log-x --out runs/kd-sweep/acc runs/kd-sweep/T*"
    )]
    PlotSweep(plot_sweep::PlotSweepArgs),
    /// Summarise run directories: test accuracy per group of seeds (mean ± std).
    #[command(after_help = "Example:\n  mentor summarize runs/kd/mnist/*")]
    Summarize(summarize::SummarizeArgs),
    /// List a network's parameters by mentor's name (for group patterns) and PyTorch's.
    #[command(
        after_help = "Examples:\n  mentor params --model cnn --dataset digits\n  mentor params --model resnet50 --classes 10"
    )]
    Params(params::ParamsArgs),
    /// The ImageNet families: parameters, input, preprocessing, where weights come from.
    Models(models::ModelsArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Advise(a) => advise::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Transfer(a) => transfer::run(a),
        Command::Continual(a) => continual::run(a),
        Command::Multitask(a) => multitask::run(a),
        Command::Augment(a) => augment::run(a),
        Command::Data(a) => data::run(a),
        Command::Ssl(a) => ssl::run(a),
        Command::Knn(a) => knn::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Export(a) => export::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Footprint(a) => footprint::run(a),
        Command::Params(a) => params::run(a),
        Command::Models(a) => models::run(a),
        Command::PlotSweep(a) => plot_sweep::run(a),
        Command::Summarize(a) => summarize::run(a),
    }
}
