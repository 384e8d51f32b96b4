//! An invoice as a document: the fields a GST tax invoice must carry
//! (CGST Rules, rule 46: the supplier's name, address and GSTIN; a
//! consecutive number of at most 16 characters and the date; the
//! recipient's name, address and GSTIN when registered; the place of
//! supply with its state's name and code; SAC, description and taxable
//! value of each line; the rate and amount of each tax head; whether tax
//! is payable on reverse charge; the supplier's signatory), laid out once
//! ([`Document`]) and written as HTML or as a PDF (A4, the standard
//! Helvetica font, so no font file ships with us).

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use rackwave_core::html::escape_html;
use rackwave_core::money::rupees;
use rackwave_store::{CreditNote, Invoice, InvoiceStatus, Payment};

use crate::gstin::state_name;
use crate::numbering::ist_date;

/// A state code with its name: `27 (Maharashtra)`.
fn state(code: &str) -> String {
    match state_name(code) {
        Some(name) => format!("{code} ({name})"),
        None => code.to_string(),
    }
}

/// The invoice's content in reading order.
struct Document {
    title: &'static str,
    /// Label and value pairs of the header.
    facts: Vec<(&'static str, String)>,
    seller: Vec<String>,
    buyer: Vec<String>,
    /// Description, SAC, period, amount.
    lines: Vec<[String; 4]>,
    /// Label and amount of the totals.
    totals: Vec<(String, String)>,
    notes: Vec<String>,
}

impl Document {
    fn of(invoice: &Invoice, payments: &[Payment], credit_notes: &[CreditNote]) -> Document {
        let rate = |bp: u32| {
            let (whole, frac) = (bp / 100, bp % 100);
            if frac == 0 {
                format!("{whole}%")
            } else {
                format!("{whole}.{frac:02}%")
            }
        };
        let party = |p: &rackwave_store::Party| {
            let mut out = vec![p.name.clone()];
            out.extend(p.address.lines().map(str::to_string));
            out.push(format!("State: {}", state(&p.state_code)));
            out.push(match &p.gstin {
                Some(g) => format!("GSTIN: {g}"),
                None => "GSTIN: unregistered".into(),
            });
            out
        };
        let status = match invoice.status {
            InvoiceStatus::Open => "Open",
            InvoiceStatus::Paid => "Paid",
            InvoiceStatus::Overdue => "Overdue",
            InvoiceStatus::Void => "Void",
        };
        let mut totals = vec![("Taxable value".to_string(), rupees(invoice.subtotal_paise))];
        if invoice.seller.state_code == invoice.place_of_supply {
            let half = invoice.gst_rate_bp / 2;
            totals.push((format!("CGST @ {}", rate(half)), rupees(invoice.cgst_paise)));
            totals.push((format!("SGST @ {}", rate(half)), rupees(invoice.sgst_paise)));
        } else {
            totals.push((
                format!("IGST @ {}", rate(invoice.gst_rate_bp)),
                rupees(invoice.igst_paise),
            ));
        }
        totals.push(("Total (INR)".into(), rupees(invoice.total_paise)));
        if invoice.credit_applied_paise > 0 {
            totals.push((
                "Paid from credit".into(),
                rupees(invoice.credit_applied_paise),
            ));
        }
        for p in payments {
            totals.push((
                format!("Payment {} on {}", p.reference, ist_date(p.received_at_ms)),
                rupees(p.amount_paise),
            ));
        }
        for n in credit_notes {
            totals.push((
                format!("Credit note {} ({})", n.number, n.reason),
                rupees(n.total_paise),
            ));
        }
        totals.push(("Balance due".into(), rupees(invoice.balance_paise())));
        Document {
            title: "Tax Invoice",
            facts: vec![
                ("Invoice number", invoice.number.clone()),
                ("Invoice date", ist_date(invoice.issued_at_ms).to_string()),
                ("Due date", ist_date(invoice.due_at_ms).to_string()),
                ("Place of supply", state(&invoice.place_of_supply)),
                ("Reverse charge", "No".into()),
                ("Status", status.into()),
            ],
            seller: party(&invoice.seller),
            buyer: party(&invoice.buyer),
            lines: invoice
                .lines
                .iter()
                .map(|l| {
                    [
                        l.description.clone(),
                        l.sac.clone(),
                        format!(
                            "{} to {}",
                            ist_date(l.period_start_ms),
                            ist_date(l.period_end_ms)
                        ),
                        rupees(l.amount_paise),
                    ]
                })
                .collect(),
            totals,
            notes: vec![
                "Amounts in Indian rupees. Tax is not payable on reverse charge.".into(),
                format!("For {}: authorised signatory", invoice.seller.name),
            ],
        }
    }
}

/// The invoice as a self-contained HTML page.
pub fn invoice_html(
    invoice: &Invoice,
    payments: &[Payment],
    credit_notes: &[CreditNote],
) -> String {
    let d = Document::of(invoice, payments, credit_notes);
    let e = escape_html;
    let mut h = String::with_capacity(4096);
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>{} {}</title>",
        d.title,
        e(&invoice.number)
    ));
    h.push_str(
        "<style>body{font:14px/1.4 system-ui,sans-serif;max-width:50em;margin:2em auto;color:#111}\
         table{border-collapse:collapse;width:100%}th,td{padding:.3em .5em;text-align:left;border-bottom:1px solid #ccc}\
         td.amount,th.amount{text-align:right}.parties{display:flex;gap:2em}.parties div{flex:1}</style>",
    );
    h.push_str(&format!("</head><body><h1>{}</h1><dl>", d.title));
    for (label, value) in &d.facts {
        h.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", e(value)));
    }
    h.push_str("</dl><div class=\"parties\">");
    for (heading, lines) in [("Supplier", &d.seller), ("Recipient", &d.buyer)] {
        h.push_str(&format!("<div><h2>{heading}</h2><p>"));
        h.push_str(&lines.iter().map(|l| e(l)).collect::<Vec<_>>().join("<br>"));
        h.push_str("</p></div>");
    }
    h.push_str(
        "</div><table><thead><tr><th>Description</th><th>SAC</th><th>Period</th>\
         <th class=\"amount\">Taxable value</th></tr></thead><tbody>",
    );
    for [desc, sac, period, amount] in &d.lines {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"amount\">{}</td></tr>",
            e(desc),
            e(sac),
            e(period),
            e(amount)
        ));
    }
    h.push_str("</tbody></table><table class=\"totals\"><tbody>");
    for (label, amount) in &d.totals {
        h.push_str(&format!(
            "<tr><th>{}</th><td class=\"amount\">{}</td></tr>",
            e(label),
            e(amount)
        ));
    }
    h.push_str("</tbody></table>");
    for n in &d.notes {
        h.push_str(&format!("<p>{}</p>", e(n)));
    }
    h.push_str("</body></html>\n");
    h
}

/// Text in the standard fonts' WinAnsi encoding (what it cannot show
/// becomes `?`).
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' | '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// The invoice as a one-page A4 PDF (more lines than fit go on in the
/// same column; invoices here have a line or two).
pub fn invoice_pdf(
    invoice: &Invoice,
    payments: &[Payment],
    credit_notes: &[CreditNote],
) -> Vec<u8> {
    let d = Document::of(invoice, payments, credit_notes);
    let (catalog, tree, page_id, font, bold, contents) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
        Ref::new(6),
    );
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
    page.parent(tree);
    page.contents(contents);
    let mut resources = page.resources();
    let mut fonts = resources.fonts();
    fonts.pair(Name(b"F1"), font);
    fonts.pair(Name(b"F2"), bold);
    fonts.finish();
    resources.finish();
    page.finish();
    for (id, name) in [(font, &b"Helvetica"[..]), (bold, &b"Helvetica-Bold"[..])] {
        pdf.type1_font(id)
            .base_font(Name(name))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    let mut c = Content::new();
    let mut y = 800.0_f32;
    let text = |c: &mut Content, x: f32, y: f32, size: f32, bold: bool, s: &str| {
        c.begin_text();
        c.set_font(Name(if bold { b"F2" } else { b"F1" }), size);
        c.next_line(x, y);
        c.show(Str(&win_ansi(s)));
        c.end_text();
    };
    text(&mut c, 50.0, y, 18.0, true, d.title);
    y -= 28.0;
    for (label, value) in &d.facts {
        text(&mut c, 50.0, y, 10.0, true, label);
        text(&mut c, 170.0, y, 10.0, false, value);
        y -= 14.0;
    }
    y -= 10.0;
    let top = y;
    for (x, heading, lines) in [
        (50.0, "Supplier", &d.seller),
        (310.0, "Recipient", &d.buyer),
    ] {
        let mut yy = top;
        text(&mut c, x, yy, 11.0, true, heading);
        yy -= 14.0;
        for l in lines.iter() {
            text(&mut c, x, yy, 10.0, false, l);
            yy -= 13.0;
        }
        y = y.min(yy);
    }
    y -= 14.0;
    let columns = [50.0, 300.0, 360.0, 490.0];
    for (x, h) in columns
        .iter()
        .zip(["Description", "SAC", "Period", "Taxable value"])
    {
        text(&mut c, *x, y, 10.0, true, h);
    }
    y -= 14.0;
    for line in &d.lines {
        for (x, cell) in columns.iter().zip(line.iter()) {
            text(&mut c, *x, y, 9.0, false, cell);
        }
        y -= 13.0;
    }
    y -= 10.0;
    for (label, amount) in &d.totals {
        text(
            &mut c,
            300.0,
            y,
            10.0,
            label.starts_with("Total") || label == "Balance due",
            label,
        );
        text(&mut c, 490.0, y, 10.0, false, amount);
        y -= 14.0;
    }
    y -= 10.0;
    for n in &d.notes {
        text(&mut c, 50.0, y, 9.0, false, n);
        y -= 12.0;
    }
    pdf.stream(contents, &c.finish());
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_ansi_keeps_latin_1() {
        assert_eq!(win_ansi("Café ₹"), b"Caf\xe9 ?".to_vec());
    }
}
