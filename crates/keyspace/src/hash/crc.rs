//! The CRC family: twemproxy's `crc16`, `crc32`, `crc32a`, and the masked CRC16-XMODEM
//! that Redis Cluster uses for key slots.

/// CRC16-XMODEM (poly 0x1021, MSB first) lookup table, built at compile time.
const XMODEM_TABLE: [u16; 256] = xmodem_table();

// Only evaluated at compile time: an out-of-range index would fail the build, never panic.
#[allow(clippy::indexing_slicing)]
const fn xmodem_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[inline]
fn xmodem_entry(index: u32) -> u32 {
    // The index is masked to a byte, so `get` always hits; it only avoids a panic path.
    XMODEM_TABLE
        .get((index & 0xff) as usize)
        .map_or(0, |&v| u32::from(v))
}

/// Standard CRC16-XMODEM (what Redis Cluster's `keyHashSlot` uses).
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    (twemproxy_crc16(data) & 0xffff) as u16
}

/// twemproxy's `crc16`: the XMODEM table, but a `uint32_t` accumulator that is never
/// masked, so bits above 16 pile up (`"123456789"` gives 0x869031C3, not 0x31C3).
/// The low 16 bits are always the true CRC16-XMODEM.
pub fn twemproxy_crc16(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ xmodem_entry((crc >> 8) ^ u32::from(b))
    })
}

/// twemproxy's `crc32` (libmemcached's): bits 16..31 of the standard CRC-32, top bit
/// dropped, so only 15 bits. With ketama every key then lands on one server, as in
/// twemproxy.
pub fn twemproxy_crc32(key: &[u8]) -> u32 {
    (crc32fast::hash(key) >> 16) & 0x7fff
}

/// twemproxy's `crc32a`: the standard CRC-32 (IEEE 802.3).
pub fn twemproxy_crc32a(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}
