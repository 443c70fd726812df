//! Where a load's time goes: named steps, each timed from the end of the
//! one before, printed on one line at `-v` (`read 0.012 s, copy 0.004 s`).

use std::fmt;
use std::time::Instant;

/// The steps done so far and how long each took.
pub(crate) struct Steps {
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Steps {
    pub(crate) fn start() -> Self {
        Self {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Ends step `name`: it took the time since the previous step ended.
    pub(crate) fn end(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

impl fmt::Display for Steps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, seconds)) in self.done.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {seconds:.3} s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_is_timed_from_the_end_of_the_one_before() {
        let mut steps = Steps::start();
        std::thread::sleep(std::time::Duration::from_millis(30));
        steps.end("read");
        let after_read = Instant::now();
        steps.end("copy");
        let names: Vec<&str> = steps.done.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["read", "copy"]);
        // The sleep is in the first step, not in the second (which ended
        // no later than now, counted from the end of the first).
        assert!(steps.done[0].1 >= 0.03, "{steps}");
        assert!(
            steps.done[1].1 <= after_read.elapsed().as_secs_f64() + 1e-3,
            "{steps}"
        );
    }

    #[test]
    fn steps_print_on_one_line_in_order() {
        let steps = Steps {
            last: Instant::now(),
            done: vec![("read", 0.0123), ("copy", 1.5)],
        };
        assert_eq!(steps.to_string(), "read 0.012 s, copy 1.500 s");
    }
}
