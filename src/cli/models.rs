//! `mentor models`: one line per ImageNet family, from its model card.

use clap::Args;
use mentor::models::ModelConfig;

/// Arguments of `mentor models` (none).
#[derive(Debug, Args)]
pub struct ModelsArgs {}

/// Prints each family's parameters, input, preprocessing and where its weights come from.
pub fn run(_: ModelsArgs) -> anyhow::Result<()> {
    println!(
        "| model.type | parameters | input | preprocessing | classifier | layer groups | weights |\n|---|---|---|---|---|---|---|"
    );
    for model in ModelConfig::families() {
        let Some(card) = model.card() else { continue };
        let parameters = model
            .parameter_estimate(card.input, card.classes)
            .map_or("?".to_string(), |n| n.to_string());
        let [c, h, w] = card.input;
        let groups: Vec<&str> = card.groups.iter().map(|g| g.name.as_str()).collect();
        println!(
            "| {} | {parameters} | {c}x{h}x{w} | resize {}, centre crop {}, mean {:?}, std {:?} | {} | {} | {} |",
            card.family,
            card.resize,
            card.crop(),
            card.mean,
            card.std,
            card.head,
            groups.join(", "),
            card.weights
        );
    }
    Ok(())
}
