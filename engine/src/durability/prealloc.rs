//! WAL segment preallocation. On a filesystem that must write the inode
//! when a file grows (ext4 without a journal: `ext4_write_inode` after the
//! data), an fdatasync after an append waits for two I/Os; after a write
//! inside space already allocated, for the data alone. So segments are
//! grown ahead of the records, a step at a time, and records are written in
//! place at the writer's offset: the zeros past the last record mark the end
//! (docs/format.md, "Preallocated segments").

use std::io;

use crate::durability::io::StorageFile;

/// How a segment's file grows ahead of its records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prealloc {
    /// Sizes are multiples of this (a smaller segment limit: the limit).
    step: u64,
    /// `wal_segment_size_bytes_max`: no space is reserved past it.
    segment_max: u64,
}

impl Prealloc {
    /// From `wal_preallocate_step_bytes` and `wal_segment_size_bytes_max`:
    /// one fdatasync in `step` bytes of records also writes a size change.
    pub(crate) fn new(step: u64, segment_max: u64) -> Prealloc {
        Prealloc {
            step: step.min(segment_max).max(1),
            segment_max,
        }
    }

    /// File size to allocate for a segment whose records end at `end`:
    /// the next step boundary, but not past the segment limit (rotation
    /// follows once the records reach it), and never less than `end`.
    pub(crate) fn target(self, end: u64) -> u64 {
        end.next_multiple_of(self.step)
            .min(self.segment_max)
            .max(end)
    }

    /// Write `buf` at `offset` (the end of the records) of a segment of
    /// size `allocated`; if it did not fit, grow the file by a step after.
    ///
    /// The records go first: new space never exists before the records
    /// in front of it were written, so a crash cannot leave the zeros the
    /// records should have overwritten followed by unsynced allocated
    /// space that reads back as garbage (the reader would cut that as a
    /// torn tail, but it must never hide records behind it).
    pub(crate) fn write(
        self,
        file: &dyn StorageFile,
        offset: u64,
        allocated: &mut u64,
        buf: &[u8],
    ) -> io::Result<()> {
        let end = offset + buf.len() as u64;
        file.write_at(offset, buf)?;
        if end > *allocated {
            *allocated = end;
            let target = self.target(end);
            file.allocate(target)?;
            *allocated = target;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_grow_by_steps_up_to_the_segment_limit() {
        const STEP: u64 = 4 << 20;
        let p = Prealloc::new(STEP, 64 << 20);
        assert_eq!(p.target(24), STEP);
        assert_eq!(p.target(STEP), STEP);
        assert_eq!(p.target(STEP + 1), 2 * STEP);
        assert_eq!(p.target((64 << 20) - 1), 64 << 20);
        // Records past the limit: exactly their end (the segment rotates).
        assert_eq!(p.target((64 << 20) + 5), (64 << 20) + 5);
        let small = Prealloc::new(STEP, 2048);
        assert_eq!(small.target(24), 2048);
        assert_eq!(small.target(2100), 2100);
    }
}
