//! The argument area the tool and the parasite share: typed, bounds- and
//! alignment-checked views of it for the commands.

/// The argument area: where it is and how long.
#[derive(Clone, Copy)]
pub struct Area {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Area {
    /// The area as a `T` at offset 0, if it fits and is aligned.
    pub fn get<T>(&mut self) -> Option<&mut T> {
        self.at::<T>(0)
    }

    /// A `T` at byte offset `off`, if it fits and is aligned.
    pub fn at<T>(&mut self, off: usize) -> Option<&mut T> {
        let end = off.checked_add(core::mem::size_of::<T>())?;
        if self.ptr.is_null() || end > self.len {
            return None;
        }
        let p = self.ptr.wrapping_add(off).cast::<T>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: inside the area (checked above), aligned, and the tool does
        // not touch the area while a command runs. Callers only use this for
        // `#[repr(C)]` integer structs, valid for any bit pattern.
        Some(unsafe { &mut *p })
    }

    /// `nr` entries of `E` after a header of `H`, if they fit.
    pub fn array<E>(&mut self, header: usize, nr: u64) -> Option<&mut [E]> {
        let nr = usize::try_from(nr).ok()?;
        let bytes = nr.checked_mul(core::mem::size_of::<E>())?;
        let end = header.checked_add(bytes)?;
        if self.ptr.is_null() || end > self.len {
            return None;
        }
        let p = self.ptr.wrapping_add(header).cast::<E>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: as in `at`, for `nr` consecutive entries.
        Some(unsafe { core::slice::from_raw_parts_mut(p, nr) })
    }
}
