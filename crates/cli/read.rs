//! `mnist read`: the number written left to right in each image file.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::cli::ReadArgs;
use crate::images::{self, percent, DigitAnswer, Reader};

pub fn run(args: ReadArgs) -> Result<ExitCode> {
    let min_confidence = crate::cli::min_confidence(args.min_confidence)?;
    let reader = Reader::load(&args.model)?;
    let prepared = images::prepare_all(&args.images, mnist_image::read_number);
    let numbers: Vec<&[_]> = prepared.iter().flatten().map(Vec::as_slice).collect();
    let mut read = images::read_numbers(&reader, &numbers)?.into_iter();
    let mut failed = 0;
    for (path, result) in args.images.iter().zip(&prepared) {
        if let Err(error) = result {
            images::report_failure(path, error, args.json);
            failed += 1;
            continue;
        }
        let Some(digits) = read.next() else {
            anyhow::bail!("fewer numbers read than pictures prepared");
        };
        let mut number = String::new();
        let mut parts = Vec::new();
        let mut text = Vec::new();
        for (k, (found, probabilities)) in digits.iter().enumerate() {
            if let Some(dir) = &args.dump_preprocessed {
                let name = format!("{}-{}.png", images::stem(path), k + 1);
                images::dump(dir, &name, &found.styled.pixels)?;
            }
            let answer = DigitAnswer::new(probabilities, min_confidence);
            let (digit, probability) = (answer.digit(), answer.probability());
            number.push(char::from(b'0' + digit as u8));
            if answer.uncertain {
                let (second, p2) = answer.top3[1];
                eprintln!(
                    "warning: {}: digit {} of {} is uncertain: {digit} at {}, else {second} at {}",
                    path.display(),
                    k + 1,
                    digits.len(),
                    percent(probability),
                    percent(p2)
                );
            }
            text.push(format!(
                "{digit}{} {}",
                if answer.uncertain { "?" } else { "" },
                percent(probability)
            ));
            parts.push(answer.to_json(found));
        }
        let any_uncertain = parts.iter().any(|p| p["uncertain"] == true);
        if args.json {
            let line = json!({
                "file": path,
                "number": number,
                "uncertain": any_uncertain,
                "digits": parts,
            });
            println!("{line}");
        } else {
            println!("{}: {number}  ({})", path.display(), text.join(", "));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
