//! The `kws` model behind a tiny C ABI, for hosts that instantiate the module
//! and call its exports (a WASI reactor; there is no `_start`).
//!
//! Protocol (all sizes in bytes, pointers are offsets into the exported memory):
//! 1. if the module exports `_initialize`, call it once (rustc 1.63 does not emit it);
//! 2. `kws_reactor_input()` returns where to write the 49x40 f32 features
//!    (`kws_reactor_input_len()` floats, little-endian);
//! 3. `kws_reactor_classify()` runs the model and returns the best class, or -1;
//! 4. `kws_reactor_scores()` points to the `kws_reactor_scores_len()` f32 logits;
//!    after -1, `kws_reactor_error()` points to a UTF-8 message of
//!    `kws_reactor_error_len()` bytes.
//!
//! The model is created on first use: Model::new() calls kws_init(), which
//! registers the kernels explicitly, so no constructor (`__wasm_call_ctors`)
//! has to run first.

use std::cell::RefCell;

struct State {
    model: Option<kws::Model>,
    input: Vec<f32>,
    scores: Vec<f32>,
    error: String,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        model: None,
        input: vec![0.0; kws::INPUTS[0].len()],
        scores: vec![0.0; kws::OUTPUTS[0].len()],
        error: String::new(),
    });
}

#[no_mangle]
pub extern "C" fn kws_reactor_input() -> *mut f32 {
    STATE.with(|s| s.borrow_mut().input.as_mut_ptr())
}

#[no_mangle]
pub extern "C" fn kws_reactor_input_len() -> usize {
    kws::INPUTS[0].len()
}

#[no_mangle]
pub extern "C" fn kws_reactor_scores() -> *const f32 {
    STATE.with(|s| s.borrow().scores.as_ptr())
}

#[no_mangle]
pub extern "C" fn kws_reactor_scores_len() -> usize {
    kws::OUTPUTS[0].len()
}

#[no_mangle]
pub extern "C" fn kws_reactor_error() -> *const u8 {
    STATE.with(|s| s.borrow().error.as_ptr())
}

#[no_mangle]
pub extern "C" fn kws_reactor_error_len() -> usize {
    STATE.with(|s| s.borrow().error.len())
}

#[no_mangle]
pub extern "C" fn kws_reactor_classify() -> i32 {
    STATE.with(|s| {
        let state = &mut *s.borrow_mut();
        match classify(state) {
            Ok(class) => {
                state.error.clear();
                class as i32
            }
            Err(error) => {
                state.error = error.to_string();
                -1
            }
        }
    })
}

fn classify(state: &mut State) -> Result<usize, kws::Error> {
    if state.model.is_none() {
        state.model = Some(kws::Model::new()?);
    }
    let model = state.model.as_mut().expect("set above");
    let outputs = model.run_f32(&[&state.input])?;
    // Copy, not replace: the address kws_reactor_scores() returned stays valid.
    state.scores.copy_from_slice(&outputs[0]);
    let mut best = 0;
    for (i, v) in state.scores.iter().enumerate() {
        if *v > state.scores[best] {
            best = i;
        }
    }
    Ok(best)
}
