//! Single-nucleotide variants from a VCF (plain, gzip or bgzip), read with noodles.
//!
//! Each ALT allele of a record is one variant. Only substitutions of one base by another
//! (A C G T) are scored; a record with an indel, a symbolic or an unknown allele is refused
//! with its line, naming how to keep SNVs only (`bcftools view -v snps`).

use crate::error::FileError;
use crate::io::text::is_gzip;
use crate::store::bases::base_code;
use noodles::vcf;
use noodles::vcf::variant::record::{AlternateBases as _, Ids as _};
use std::io::{BufReader, Read};
use std::path::Path;

/// One SNV: 1-based position, base codes (A C G T = 0..3), the VCF line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snv {
    pub chrom: String,
    pub pos: u64,
    pub id: String,
    pub reference: u8,
    pub alt: u8,
    pub line: u64,
}

impl Snv {
    /// `chrom:pos:REF>ALT`, or the VCF id when it has one.
    pub fn name(&self) -> String {
        if self.id.is_empty() || self.id == "." {
            format!("{}:{}:{}>{}", self.chrom, self.pos, BASES[self.reference as usize], BASES[self.alt as usize])
        } else {
            self.id.clone()
        }
    }
}

/// The letters of base codes 0..4.
pub const BASES: [char; 5] = ['A', 'C', 'G', 'T', 'N'];

fn single_base(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [b] => base_code(*b).filter(|&c| c < 4),
        _ => None,
    }
}

/// Every SNV of the file, in file order.
pub fn read_snvs(path: &Path) -> Result<Vec<Snv>, FileError> {
    let file = std::fs::File::open(path).map_err(FileError::io(path))?;
    let inner: Box<dyn Read> =
        if is_gzip(path)? { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    let mut reader = vcf::io::Reader::new(BufReader::with_capacity(1 << 16, inner));
    let mut header = String::new();
    reader
        .header_reader()
        .read_to_string(&mut header)
        .map_err(|e| FileError::content(path, format!("reading the VCF header failed: {e}")))?;
    if !header.lines().any(|l| l.starts_with("#CHROM")) {
        return Err(FileError::content(path, "no `#CHROM POS ID REF ALT …` header line: not a VCF file"));
    }
    let mut line = header.lines().count() as u64;
    let mut record = vcf::Record::default();
    let mut out = Vec::new();
    loop {
        line += 1;
        let read = reader
            .read_record(&mut record)
            .map_err(|e| FileError::line(path, line, format!("not a VCF record: {e}")))?;
        if read == 0 {
            break;
        }
        let chrom = record.reference_sequence_name().to_string();
        let pos = match record.variant_start() {
            Some(Ok(p)) => usize::from(p) as u64,
            _ => return Err(FileError::line(path, line, "POS is missing or not a position ≥ 1")),
        };
        let id = record.ids().iter().next().unwrap_or(".").to_string();
        let ref_text = record.reference_bases();
        let Some(reference) = single_base(ref_text) else {
            return Err(not_snv(path, line, ref_text, record.alternate_bases().as_ref()));
        };
        for alt in record.alternate_bases().iter() {
            let alt = alt.map_err(|e| FileError::line(path, line, format!("ALT: {e}")))?;
            match single_base(alt) {
                Some(a) if a != reference => {
                    out.push(Snv { chrom: chrom.clone(), pos, id: id.clone(), reference, alt: a, line })
                }
                _ => return Err(not_snv(path, line, ref_text, alt)),
            }
        }
    }
    Ok(out)
}

fn not_snv(path: &Path, line: u64, reference: &str, alt: &str) -> FileError {
    FileError::line(
        path,
        line,
        format!(
            "REF {reference} ALT {alt} is not a single-base substitution: only SNVs are scored (keep them with `bcftools view -v snps`)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("chromax-vcf-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("temp file");
        p
    }

    const HEADER: &str = "##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";

    #[test]
    fn reads_snvs_with_their_lines() {
        let p = write("a.vcf", &format!("{HEADER}chr1\t10\trs1\tA\tG,T\t.\tPASS\t.\nchr2\t5\t.\tc\tA\t.\t.\t.\n"));
        let v = read_snvs(&p).expect("reads");
        assert_eq!(v.len(), 3);
        assert_eq!((v[0].chrom.as_str(), v[0].pos, v[0].reference, v[0].alt, v[0].line), ("chr1", 10, 0, 2, 3));
        assert_eq!((v[1].alt, v[1].name()), (3, "rs1".to_string()));
        assert_eq!((v[2].reference, v[2].name(), v[2].line), (1, "chr2:5:C>A".to_string(), 4));
    }

    #[test]
    fn indels_are_refused_with_their_line() {
        let p = write("b.vcf", &format!("{HEADER}chr1\t10\t.\tA\tG\t.\t.\t.\nchr1\t20\t.\tA\tAT\t.\t.\t.\n"));
        let e = read_snvs(&p).expect_err("an insertion").to_string();
        assert!(e.contains("line 4") && e.contains("AT") && e.contains("bcftools"), "{e}");
        let q = write("c.vcf", "chr1\t10\t.\tA\tG\n");
        assert!(read_snvs(&q).expect_err("no header").to_string().contains("#CHROM"));
    }
}
