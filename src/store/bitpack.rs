//! Bit-packed numbers: a writer and a reader of values of any width from 0 to 64 bits,
//! packed low bits first with no padding, for derived data whose size on disk matters more
//! than the speed of decoding it (see `postings`).
//!
//! A *number* is written as its width in 7 bits, then its bits; a *column* as its minimum
//! (a number), the width of the largest difference to it (7 bits), then each difference
//! in that width.

use super::StoreError;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("bit-packed data: {what}"))
}

/// The bits needed to hold `value`.
fn width(value: u64) -> u32 {
    64 - value.leading_zeros()
}

/// A mask of the low `bits` bits (`bits` ≤ 64).
fn low_bits(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// Appends bits to a byte vector.
#[derive(Debug, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    /// Bits written so far.
    bits: usize,
}

impl BitWriter {
    /// Appends the low `bits` bits of `value`.
    pub fn put(&mut self, mut value: u64, mut bits: u32) {
        while bits > 0 {
            let offset = (self.bits % 8) as u32;
            if offset == 0 {
                self.out.push(0);
            }
            let take = (8 - offset).min(bits);
            if let Some(last) = self.out.last_mut() {
                *last |= ((value & ((1 << take) - 1)) as u8) << offset;
            }
            value >>= take;
            bits -= take;
            self.bits += take as usize;
        }
    }

    /// A writer that starts with the header every encoded piece and chunk has: its
    /// format (8 bits), then how many entries (or runs) it holds (a number).
    pub fn framed(format: u8, count: usize) -> BitWriter {
        let mut out = BitWriter::default();
        out.put(u64::from(format), 8);
        out.number(count as u64);
        out
    }

    /// Appends `value` with its width.
    pub fn number(&mut self, value: u64) {
        let bits = width(value);
        self.put(u64::from(bits), 7);
        self.put(value, bits);
    }

    /// Appends `values` as a column (see the module's doc).
    pub fn column(&mut self, values: impl Iterator<Item = u64> + Clone) {
        let base = values.clone().min().unwrap_or(0);
        let bits = width(values.clone().map(|v| v - base).max().unwrap_or(0));
        self.number(base);
        self.put(u64::from(bits), 7);
        for value in values {
            self.put(value - base, bits);
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

/// Reads what a [`BitWriter`] wrote.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Bits read so far.
    bits: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, bits: 0 }
    }

    /// A reader of `data` past the header [`BitWriter::framed`] wrote, with the count it
    /// holds; a format other than `format` or a count outside `1..=max` is `corrupt`.
    pub fn framed(
        data: &'a [u8],
        format: u8,
        max: usize,
        corrupt: fn(&str) -> StoreError,
    ) -> Result<(BitReader<'a>, usize), StoreError> {
        let mut reader = BitReader::new(data);
        if reader.get(8)? != u64::from(format) {
            return Err(corrupt("unknown format"));
        }
        let count = usize::try_from(reader.number()?)
            .ok()
            .filter(|count| (1..=max).contains(count))
            .ok_or_else(|| corrupt("count"))?;
        Ok((reader, count))
    }

    /// The next `bits` bits (at most 64).
    pub fn get(&mut self, bits: u32) -> Result<u64, StoreError> {
        if bits > 64 {
            return Err(corrupt("width"));
        }
        let (mut value, mut got) = (0u64, 0u32);
        while got < bits {
            let byte = *self
                .data
                .get(self.bits / 8)
                .ok_or_else(|| corrupt("truncated"))?;
            let offset = (self.bits % 8) as u32;
            let take = (8 - offset).min(bits - got);
            let piece = (u64::from(byte) >> offset) & ((1 << take) - 1);
            value |= piece << got;
            got += take;
            self.bits += take as usize;
        }
        Ok(value)
    }

    /// The next number.
    pub fn number(&mut self) -> Result<u64, StoreError> {
        let bits = self.get(7)? as u32;
        self.get(bits)
    }

    /// The next column of `len` values, into `out` (cleared first).
    pub fn column(&mut self, len: usize, out: &mut Vec<u64>) -> Result<(), StoreError> {
        out.clear();
        let base = self.number()?;
        let bits = self.get(7)? as u32;
        if bits > 64 || self.bits + bits as usize * len > self.data.len() * 8 {
            return Err(corrupt("column longer than the data"));
        }
        out.reserve(len);
        // The writer's values are at most u64::MAX; a sum past it (corrupt data) saturates.
        if bits > 56 {
            for _ in 0..len {
                out.push(base.saturating_add(self.get(bits)?));
            }
            return Ok(());
        }
        // Each value lies within the eight bytes from its first: read them as one word.
        let mask = low_bits(bits);
        let mut position = self.bits;
        out.resize(len, 0);
        for slot in out.iter_mut() {
            let at = position / 8;
            let word = match self.data.get(at..at + 8) {
                Some(eight) => eight.try_into().unwrap_or([0; 8]),
                None => {
                    let mut word = [0u8; 8];
                    let rest = &self.data[at.min(self.data.len())..];
                    word[..rest.len()].copy_from_slice(rest);
                    word
                }
            };
            *slot = base.saturating_add((u64::from_le_bytes(word) >> (position % 8)) & mask);
            position += bits as usize;
        }
        self.bits = position;
        Ok(())
    }

    /// Checks that nothing but the last byte's padding is left.
    pub fn finish(self) -> Result<(), StoreError> {
        let padding = self.data.len() * 8 - self.bits;
        if padding >= 8
            || self
                .data
                .last()
                .is_some_and(|&b| padding > 0 && b >> (8 - padding) != 0)
        {
            return Err(corrupt("trailing bits"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_columns_of_every_width_round_trip() {
        let mut w = BitWriter::default();
        let numbers = [
            0,
            1,
            2,
            127,
            128,
            255,
            256,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ];
        for n in numbers {
            w.number(n);
        }
        let columns: Vec<Vec<u64>> = vec![
            vec![7],
            vec![5, 5, 5],
            vec![0, 1, 0, 1, 1],
            vec![1_000, 1_512, 3_000, 1_001],
            vec![0, u64::MAX],
            vec![u64::MAX, u64::MAX - 3],
            (0..300).map(|i| i * 7919 % 65_537).collect(),
        ];
        for column in &columns {
            w.column(column.iter().copied());
            w.put(1, 1); // keeps the next column off any byte boundary
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        for n in numbers {
            assert_eq!(r.number().expect("number"), n);
        }
        let mut out = Vec::new();
        for column in &columns {
            r.column(column.len(), &mut out).expect("column");
            assert_eq!(&out, column);
            assert_eq!(r.get(1).expect("bit"), 1);
        }
        r.finish().expect("nothing left");
    }

    #[test]
    fn columns_of_every_width_read_from_any_bit() {
        let columns: Vec<Vec<u64>> = (0..=64u32)
            .map(|bits| {
                let top = low_bits(bits);
                (0..23u64)
                    .map(|i| top - (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top))
                    .collect()
            })
            .collect();
        let mut w = BitWriter::default();
        for (at, column) in columns.iter().enumerate() {
            w.put(1, at as u32 % 8); // each column starts at another bit of its first byte
            w.column(column.iter().copied());
        }
        let bytes = w.into_bytes();
        let mut r = BitReader::new(&bytes);
        let mut out = Vec::new();
        for (at, column) in columns.iter().enumerate() {
            assert_eq!(r.get(at as u32 % 8).expect("bits"), u64::from(at % 8 > 0));
            r.column(column.len(), &mut out).expect("column");
            assert_eq!(&out, column, "column of width {at}");
        }
        r.finish().expect("nothing left");
    }

    #[test]
    fn constant_columns_take_no_bits_per_value() {
        let mut w = BitWriter::default();
        w.column(std::iter::repeat_n(123_456, 1_000));
        assert!(w.into_bytes().len() <= 4);
    }

    #[test]
    fn short_or_padded_data_is_corruption() {
        let mut w = BitWriter::default();
        w.column([3u64, 900, 17].into_iter());
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            let mut r = BitReader::new(&bytes[..cut]);
            assert!(r.column(3, &mut Vec::new()).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = BitReader::new(&longer);
        r.column(3, &mut Vec::new()).expect("column");
        assert!(r.finish().is_err());
        // A column claiming more values than the data holds fails before decoding any.
        let mut r = BitReader::new(&bytes);
        assert!(r.column(1 << 40, &mut Vec::new()).is_err());
    }
}
