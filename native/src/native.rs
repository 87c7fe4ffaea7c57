//! ClickHouse's Native block format, as the server reads an INSERT's data over
//! the native protocol (and, at revision 0, as the `Native` file format):
//! block info (protocol revision 51903 on), column and row counts, then per
//! column its name, its type, a "no custom serialization" byte (revision
//! 54454 on) and its values: String as a varint length and the bytes, integers
//! and DateTime little-endian, Decimal(18, S) as Int64 units of 10^-S,
//! Array(String) as the rows' end offsets (UInt64) and then all the texts.

pub const REVISION_WITH_BLOCK_INFO: u64 = 51903;
pub const REVISION_WITH_CUSTOM_SERIALIZATION: u64 = 54454;

pub fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn push_str(out: &mut Vec<u8>, s: &[u8]) {
    push_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

const NS_PER_S: u64 = 1_000_000_000;

/// A window's start (ns since the epoch) as a DateTime value: whole seconds, u32.
pub fn push_window_start(out: &mut Vec<u8>, start_ns: u64, window_id: &str) -> Result<(), String> {
    let s = u32::try_from(start_ns / NS_PER_S).map_err(|_| format!("window {window_id} starts after 2106"))?;
    out.extend_from_slice(&s.to_le_bytes());
    Ok(())
}

/// The block's head: info, counts. Columns follow, each from `push_column_head`.
pub fn push_block_head(out: &mut Vec<u8>, revision: u64, columns: usize, rows: usize) {
    if revision >= REVISION_WITH_BLOCK_INFO {
        // field 1: is_overflows = 0; field 2: bucket_num = -1; 0 ends the fields
        out.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]);
    }
    push_varint(out, columns as u64);
    push_varint(out, rows as u64);
}

pub fn push_column_head(out: &mut Vec<u8>, revision: u64, name: &str, type_name: &str) {
    push_str(out, name.as_bytes());
    push_str(out, type_name.as_bytes());
    if revision >= REVISION_WITH_CUSTOM_SERIALIZATION {
        out.push(0);
    }
}

/// How a column's values are laid out, from the type the server names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    String,
    UInt16,
    UInt64,
    Int64,
    DateTime,
    /// Decimal(18, scale): Int64 units
    Decimal64(u32),
    /// Array(String): per row its end offset (UInt64), then the texts of all rows
    ArrayOfString,
}

impl Layout {
    /// Whether the server's type name is this layout (DateTime with or without a time zone).
    pub fn matches(self, type_name: &str) -> bool {
        match self {
            Layout::String => type_name == "String",
            Layout::UInt16 => type_name == "UInt16",
            Layout::UInt64 => type_name == "UInt64",
            Layout::Int64 => type_name == "Int64",
            Layout::DateTime => type_name == "DateTime" || (type_name.starts_with("DateTime('") && type_name.ends_with("')")),
            Layout::Decimal64(scale) => type_name == format!("Decimal(18, {scale})"),
            Layout::ArrayOfString => type_name == "Array(String)",
        }
    }
}

/// Which of a table's known columns (name, what to write, layout) each column the server
/// listed for an insert is, in the server's order, with its layout; an error naming the
/// column if it is not one the core writes, not in the layout the core writes it in, or
/// named twice.
pub fn plan<C: Copy>(table: &str, known: &[(&str, C, Layout)], columns: &[(String, String)])
                     -> Result<Vec<(C, Layout)>, String> {
    let mut plan = Vec::with_capacity(columns.len());
    let mut seen = std::collections::HashSet::new();
    for (name, type_name) in columns {
        let (_, col, layout) = known.iter().find(|(n, _, _)| n == name)
            .ok_or_else(|| format!("{table} column {name} ({type_name}) is not one the core writes"))?;
        if !layout.matches(type_name) {
            return Err(format!("{table} column {name} is {type_name} on the server, the core writes it as \
                                {layout:?}: the schema and the core disagree"));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("{table} column {name} named twice"));
        }
        plan.push((*col, *layout));
    }
    Ok(plan)
}
