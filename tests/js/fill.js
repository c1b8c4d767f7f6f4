// Fill or edit a workbook the way a web tool or script does: load it with a JavaScript
// library, set cells one by one, save. Used by tests/test_js_writers.py (issue 13).
//
//   node fill.js exceljs|sheetjs IN.xlsx OUT.xlsx < cells.json
//
// cells.json: {"sheet": "退款申请表", "cells": {"D6": {"n": 268.5}, "B5": {"s": "138..."},
//              "F2": {"d": "2026-11-23T09:00"}}}  (dates are local wall-clock times)
"use strict";
const fs = require("fs");

const [tool, input, output] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(0, "utf8"));

// Excel serial of a wall-clock time (1900 date system), as both libraries store dates.
function serial(text) {
  const [date, time] = text.split("T");
  const [y, m, d] = date.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  return (Date.UTC(y, m - 1, d, hh, mm) - Date.UTC(1899, 11, 30)) / 86400000;
}

async function withExcelJS() {
  const ExcelJS = require("exceljs");
  const wb = new ExcelJS.Workbook();
  await wb.xlsx.readFile(input);
  const ws = wb.getWorksheet(spec.sheet);
  for (const [addr, v] of Object.entries(spec.cells)) {
    const cell = ws.getCell(addr);
    if ("d" in v) {
      const [date, time] = v.d.split("T");
      const [y, m, d] = date.split("-").map(Number);
      const [hh, mm] = time.split(":").map(Number);
      cell.value = new Date(Date.UTC(y, m - 1, d, hh, mm)); // ExcelJS writes UTC as the serial
    } else if ("n" in v) {
      cell.value = v.n;
    } else {
      cell.value = v.s;
    }
  }
  await wb.xlsx.writeFile(output);
}

function withSheetJS() {
  const XLSX = require("xlsx");
  const wb = XLSX.readFile(input, { cellStyles: true, cellNF: true, bookVBA: true });
  const ws = wb.Sheets[spec.sheet];
  for (const [addr, v] of Object.entries(spec.cells)) {
    const old = ws[addr] || {};
    if ("d" in v) {
      ws[addr] = { t: "n", v: serial(v.d), z: old.z || "yyyy-mm-dd hh:mm" };
    } else if ("n" in v) {
      ws[addr] = { t: "n", v: v.n, z: old.z };
    } else {
      ws[addr] = { t: "s", v: v.s };
    }
  }
  XLSX.writeFile(wb, output, { bookType: "xlsx" });
}

(tool === "exceljs" ? withExcelJS() : Promise.resolve().then(withSheetJS)).catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
