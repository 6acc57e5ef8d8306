//! What every loom test file shares: the exploration that checks a
//! model's outcomes. Included with `mod common;`.

use std::collections::BTreeSet;
use std::fmt::Debug;

/// Runs `model` under loom. Every execution's outcome must be in `allowed`,
/// and every outcome in `allowed` must occur in some execution.
pub fn explore<T, F>(allowed: &[T], model: F)
where
    T: Ord + Debug + Clone + Send + Sync + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    let allowed: BTreeSet<T> = allowed.iter().cloned().collect();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (check, record, count) = (
        allowed.clone(),
        std::sync::Arc::clone(&seen),
        std::sync::Arc::clone(&executions),
    );
    loom::model(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = model();
        assert!(
            check.contains(&outcome),
            "outcome {outcome:?} is not one of the allowed {check:?}"
        );
        record.lock().unwrap().insert(outcome);
    });
    let seen = seen.lock().unwrap();
    // Shown with `cargo test -- --nocapture`.
    println!(
        "{}: {} executions, outcomes {seen:?}",
        std::thread::current().name().unwrap_or("model"),
        executions.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(
        *seen, allowed,
        "some allowed outcome was never reached: the model explores less than it claims"
    );
}
