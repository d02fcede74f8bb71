//! `mnist predict`: one digit per image file.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::cli::PredictArgs;
use crate::images::{self, percent, top, Reader};

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let reader = Reader::load(&args.model)?;
    let prepared = images::prepare_all(&args.images, mnist_image::read_digit);
    let inputs: Vec<_> = prepared.iter().flatten().collect();
    let mut answers = reader.probabilities(&inputs)?.into_iter();
    let mut failed = 0;
    for (path, result) in args.images.iter().zip(&prepared) {
        let found = match result {
            Ok(found) => found,
            Err(error) => {
                images::report_failure(path, error, args.json);
                failed += 1;
                continue;
            }
        };
        let Some(probabilities) = answers.next() else {
            anyhow::bail!("the model returned fewer answers than images");
        };
        if let Some(dir) = &args.dump_preprocessed {
            images::dump(
                dir,
                &format!("{}.png", images::stem(path)),
                &found.styled.pixels,
            )?;
        }
        let ranked = top(&probabilities, 3);
        let (digit, probability) = ranked[0];
        if args.json {
            let top3: Vec<_> = ranked
                .iter()
                .map(|&(d, p)| json!({ "digit": d, "probability": p }))
                .collect();
            let line = json!({
                "file": path,
                "digit": digit,
                "probability": probability,
                "probabilities": probabilities,
                "top3": top3,
                "box": found.bbox,
                "redrawn": found.styled.redrawn(),
            });
            println!("{line}");
        } else {
            let others: Vec<String> = ranked[1..]
                .iter()
                .map(|&(d, p)| format!("{d} {}", percent(p)))
                .collect();
            println!(
                "{}: {digit} ({})  next: {}",
                path.display(),
                percent(probability),
                others.join(", ")
            );
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
