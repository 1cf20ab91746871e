//! Keyword spotting with two models compiled by wasm-build, as a WASI command.
//!
//! `kws-demo [FEATURES]` reads 49x40 MFCC features (raw little-endian f32,
//! 7840 bytes) from FEATURES, or makes up a deterministic pattern, runs the
//! `kws` classifier and the `mlp` scorer on the first 64 features, and prints
//! both outputs. Errors are printed and give exit status 1; nothing panics.

use std::env;
use std::error::Error;
use std::fs;
use std::process;

fn main() {
    if let Err(error) = run() {
        eprintln!("kws-demo: {}", error);
        process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let features = match env::args().nth(1) {
        Some(path) => read_f32(&path)?,
        None => synthetic(kws::INPUTS[0].len()),
    };

    // Each model is a handle to its library's single instance; create it once.
    let mut kws_model = kws::Model::new()?;
    let logits = kws_model.run_f32(&[&features])?.remove(0);
    println!("kws logits: {}", join(&logits));
    println!("kws class: {}", argmax(&logits));

    let mut mlp_model = mlp::Model::new()?;
    let head = &features[..mlp::INPUTS[0].len()];
    let outputs = mlp_model.run(&[mlp::Input::from(head)])?;
    let scores = outputs[0].as_slice::<f32>().ok_or("mlp output is not float32")?;
    println!("mlp scores: {}", join(scores));
    Ok(())
}

fn read_f32(path: &str) -> Result<Vec<f32>, Box<dyn Error>> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {} (is its directory preopened, e.g. `--dir .`?)", path, e))?;
    if bytes.len() != kws::INPUTS[0].nbytes {
        return Err(format!("{} has {} bytes, expected {} (49x40 float32)", path, bytes.len(), kws::INPUTS[0].nbytes).into());
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn synthetic(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i % 40) as f32 * 0.1).sin() + (i / 40) as f32 * 0.01).collect()
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn join(values: &[f32]) -> String {
    values.iter().map(|v| format!("{:.9e}", v)).collect::<Vec<_>>().join(" ")
}
