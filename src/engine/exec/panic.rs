//! Turning a panic inside a stage into a failed stage.
//!
//! A built-in kind is library code that may panic (an index out of range, an `unwrap` on bad
//! data). The scheduler must then fail that instance like any other failure — descendants
//! skipped, the message in the summary, exit 1 — and never lose a worker, which would leave
//! the coordinator waiting forever. [`catch`] runs a closure under `catch_unwind` and returns
//! the panic as a message with its location.
//!
//! The location is only known to the panic hook, which runs before unwinding starts. The
//! binary's hook calls [`capture`] first: while the current thread is inside [`catch`], it
//! stores the message for [`catch`] to return and tells the hook not to print the "internal
//! error" banner (the stage's failure is reported in the summary instead).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};

thread_local! {
    static INSIDE: Cell<u32> = const { Cell::new(0) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Run `f`; a panic becomes `Err("message (at file:line:col)")`.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // A message left by a panic that was caught and resumed elsewhere is not ours.
    CAPTURED.with(|c| c.borrow_mut().take());
    INSIDE.with(|n| n.set(n.get() + 1));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.with(|n| n.set(n.get() - 1));
    result.map_err(|payload| CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_else(|| payload_message(&*payload)))
}

/// For the panic hook: if this thread is inside [`catch`], keep the message for it and return
/// true (the hook should print nothing); otherwise return false.
pub fn capture(info: &PanicHookInfo<'_>) -> bool {
    if INSIDE.with(|n| n.get()) == 0 {
        return false;
    }
    let message = payload_message(info.payload());
    let text = match info.location() {
        Some(l) => format!("{message} (at {}:{}:{})", l.file(), l.line(), l.column()),
        None => message,
    };
    CAPTURED.with(|c| *c.borrow_mut() = Some(text));
    true
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_thread_goes_on() {
        let err = catch(|| -> u32 { panic!("index {} out of range", 7) }).unwrap_err();
        assert!(err.contains("index 7 out of range"), "{err}");
        assert_eq!(catch(|| 3).unwrap(), 3);
        assert_eq!(INSIDE.with(|n| n.get()), 0, "the depth is restored after a panic");
    }
}
