//! `mnist summary`: a network layer by layer, as its layer list defines it.

use std::process::ExitCode;

use anyhow::Result;
use mnist_model::Architecture;

use crate::cli::SummaryArgs;
use crate::train::DEFAULT_NETWORK;

pub fn run(args: SummaryArgs) -> Result<ExitCode> {
    let architecture = match args.network.architecture() {
        Some(architecture) => architecture,
        None => DEFAULT_NETWORK.parse()?,
    };
    if args.json {
        println!("{}", json(&architecture));
    } else {
        print!("{}", table(&architecture));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary as one JSON object (for scripts: the benchmark reads the shipped lists here).
fn json(a: &Architecture) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = a
        .placed()
        .iter()
        .map(|p| {
            serde_json::json!({
                "layer": p.layer.to_string(),
                "name": p.name,
                "output": p.output.to_string(),
                "parameters": p.params().iter().filter(|s| s.trainable).map(|s| s.len()).sum::<usize>(),
            })
        })
        .collect();
    serde_json::json!({
        "name": a.name(),
        "layers": a.layers_text(),
        "parameters": a.parameter_count(),
        "forward_flops": a.forward_flops(),
        "training_flops": a.training_flops(),
        // Through the text form, so f32 constants print as written (0.1307, not 0.1307000070…).
        "normalization": serde_json::from_str::<serde_json::Value>(
            &serde_json::to_string(&a.default_normalization()).unwrap_or_default()
        ).unwrap_or_default(),
        "detail": layers,
    })
}

/// The summary as a table, Keras' `model.summary()` style.
fn table(a: &Architecture) -> String {
    let mut out = format!("{}: {}\n", a.name(), a.layers_text());
    out += &format!(
        "{:<10} {:<8} {:<16} {:>12}\n",
        "layer", "name", "output", "parameters"
    );
    for p in a.placed() {
        let params: usize = p
            .params()
            .iter()
            .filter(|s| s.trainable)
            .map(|s| s.len())
            .sum();
        out += &format!(
            "{:<10} {:<8} {:<16} {:>12}\n",
            p.layer.to_string(),
            p.name.as_deref().unwrap_or(""),
            p.output.to_string(),
            params
        );
    }
    out += &format!(
        "{} trainable parameters; {:.1} MFLOP per image forward, {:.1} MFLOP per image in training\n",
        a.parameter_count(),
        a.forward_flops() as f64 / 1e6,
        a.training_flops() as f64 / 1e6
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_summary_matches_keras() {
        let text = table(&"tutorial".parse().unwrap());
        assert!(text.starts_with("tutorial: conv32x3,relu,pool2,flatten,dense128,relu,dense10\n"));
        assert!(
            text.contains("conv1    [32, 26, 26]              320"),
            "{text}"
        );
        assert!(
            text.contains("fc1      [128]                  692352"),
            "{text}"
        );
        assert!(text.contains("693962 trainable parameters"), "{text}");
        let j = json(&"fast".parse().unwrap());
        assert_eq!(j["parameters"], 108_618);
        assert_eq!(
            j["layers"],
            "conv16x3,relu,pool2,conv32x3,relu,pool2,flatten,dense128,relu,dense10"
        );
    }
}
