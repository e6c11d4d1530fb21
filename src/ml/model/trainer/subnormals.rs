//! Subnormal floats flushed to zero on the trainer's thread while it steps.
//!
//! A row that waited k steps is caught up with β₂ᵏ on its second moment; past ~60,000 steps
//! that product falls below f32's normal range, and every operation with a subnormal input or
//! result costs this kind of CPU ~100 cycles instead of one: a 100M-rating epoch slowed to half
//! its speed as such rows accumulated (BENCHMARKS.md, "Subnormal floats"). TensorFlow flushes
//! them on the CPU; so does the trainer, for the length of its steps.
//!
//! Hand-written because ONNX Runtime's own option (`session.set_denormal_as_zero`) is applied
//! once per process, on the thread that builds the first session (`std::call_once`): trainings
//! on the engine's worker threads would flush or not depending on which thread came first, and
//! trained bytes would depend on scheduling. Here the flags are set on the calling thread (x86's
//! MXCSR: flush-to-zero and denormals-are-zero) and restored when the guard drops. Only this
//! thread's floating-point operations change (ONNX Runtime runs on it: one intra-op thread),
//! and those of threads it starts meanwhile (Linux copies the flags into a new thread): the
//! trainer starts none inside the guard.
//! Elsewhere than x86-64 the guard does nothing.

/// While alive, the current thread treats subnormal inputs as zero and flushes subnormal
/// results to zero.
pub struct FlushSubnormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FLUSH_TO_ZERO: u32 = 1 << 15;
#[cfg(target_arch = "x86_64")]
const DENORMALS_ARE_ZERO: u32 = 1 << 6;

impl FlushSubnormals {
    pub fn on_this_thread() -> FlushSubnormals {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FLUSH_TO_ZERO | DENORMALS_ARE_ZERO);
            FlushSubnormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushSubnormals {}
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: `stmxcsr` stores the 4-byte control register into `value`, which is writable.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // SAFETY: `ldmxcsr` loads a control value read from this thread's register with only the
    // flush bits changed: rounding mode and exception masks stay as they were.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags));
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::hint::black_box;

    use super::*;

    #[test]
    fn subnormals_are_zero_inside_the_guard_only() {
        let product = || black_box(1e-30_f32) * black_box(1e-10_f32);
        let subnormal = f32::MIN_POSITIVE / 4.0;
        assert!(product() > 0.0, "subnormal before");
        // A thread that exists before the guard keeps its own flags (a thread started inside
        // it inherits them, as Linux copies them at thread creation).
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
            black_box(1e-30_f32) * black_box(1e-10_f32)
        });
        running.recv().unwrap();
        {
            let _flushed = FlushSubnormals::on_this_thread();
            assert_eq!(product(), 0.0, "a subnormal result is zero");
            assert_eq!(
                black_box(subnormal) * black_box(2.0_f32),
                0.0,
                "a subnormal input is zero"
            );
            assert_eq!(
                black_box(1.5_f32) * black_box(2.0_f32),
                3.0,
                "normal floats as before"
            );
            go.send(()).unwrap();
            // Compared by its bits: this thread would read the subnormal as zero.
            let result = other.join().unwrap();
            assert_eq!(
                result.to_bits(),
                (1e-40_f32).to_bits(),
                "other threads untouched"
            );
        }
        assert!(product() > 0.0, "restored after");
    }
}
