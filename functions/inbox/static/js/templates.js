// The template picker: the approved templates of GET /templates, one labelled field per parameter, and the
// send object built from them (positional {{1}} or NAMED parameters; header, body and button components).

import { h } from "./dom.js";

const LANGUAGES = {
  he: "עברית",
  en: "אנגלית",
  en_US: "אנגלית (ארה״ב)",
  en_GB: "אנגלית (בריטניה)",
  ar: "ערבית",
  ru: "רוסית",
  fr: "צרפתית",
  es: "ספרדית",
  am: "אמהרית",
};
const MEDIA_HEADERS = { image: "תמונה", video: "סרטון", document: "מסמך" };
const PARTS = { header: "הכותרת", body: "גוף ההודעה" };

export function languageName(code) {
  return LANGUAGES[code] ? `${LANGUAGES[code]} (${code})` : code;
}

export function templateKey(template) {
  return `${template.name}|${template.language}`;
}

/** Only APPROVED templates, grouped by language (Hebrew first), each group sorted by name. */
export function approvedByLanguage(templates) {
  const groups = new Map();
  for (const template of templates || []) {
    if (!template || template.status !== "APPROVED" || !template.name || !template.language) continue;
    if (!groups.has(template.language)) groups.set(template.language, []);
    groups.get(template.language).push(template);
  }
  const order = (code) => (code === "he" ? "0" : code.startsWith("en") ? `1${code}` : `2${code}`);
  return [...groups.entries()]
    .sort(([a], [b]) => order(a).localeCompare(order(b)))
    .map(([language, list]) => [language, list.sort((a, b) => a.name.localeCompare(b.name))]);
}

/** The options of the picker's <select>: one <optgroup> per language. */
export function pickerOptions(groups) {
  return [
    h("option", { value: "" }, groups.length ? "בחרו תבנית…" : "אין תבניות מאושרות"),
    groups.map(([language, list]) =>
      h(
        "optgroup",
        { label: languageName(language) },
        list.map((template) => h("option", { value: templateKey(template), dir: "ltr" }, template.name)),
      ),
    ),
  ];
}

function names(spec) {
  if (Array.isArray(spec)) return spec.map((name) => ({ name, label: name }));
  const count = Number.isInteger(spec) ? spec : 0;
  return Array.from({ length: count }, (_, index) => ({ name: null, label: `{{${index + 1}}}` }));
}

/** One field per parameter the template takes: [{component, label, name, index, sub_type, kind}]. */
export function parameterFields(template) {
  const spec = template.parameters || {};
  const fields = [];
  const headerFormat = String(spec.header_format || "").toLowerCase();
  if (spec.header !== null && spec.header !== undefined) {
    if (MEDIA_HEADERS[headerFormat]) {
      fields.push({ component: "header", kind: headerFormat, label: `כותרת: ${MEDIA_HEADERS[headerFormat]} (קישור https או מזהה מדיה)` });
    } else {
      for (const field of names(spec.header)) fields.push({ component: "header", kind: "text", ...field, label: `כותרת ${field.label}` });
    }
  }
  for (const field of names(spec.body)) fields.push({ component: "body", kind: "text", ...field, label: `גוף ההודעה ${field.label}` });
  for (const button of spec.buttons || []) {
    if (!button || !(button.parameters > 0)) continue;
    const what = button.sub_type === "copy_code" ? "קוד קופון" : button.sub_type === "url" ? "סיומת הקישור" : "ערך";
    fields.push({
      component: "button",
      kind: button.sub_type === "copy_code" ? "coupon_code" : button.sub_type === "url" ? "text" : "payload",
      index: String(button.index),
      sub_type: button.sub_type,
      label: `כפתור ${Number(button.index) + 1}: ${what}`,
    });
  }
  return fields;
}

function mediaParameter(kind, value) {
  const reference = /^\d{1,64}$/.test(value) ? { id: value } : { link: value };
  return { type: kind, [kind]: reference };
}

/** Meta's template object from the chosen template and the values typed, field by field. Throws an Error
 * in words when a value is missing or not usable. */
export function buildTemplate(template, fields, values) {
  const header = [];
  const body = [];
  const buttons = [];
  fields.forEach((field, position) => {
    const value = String(values[position] ?? "").trim();
    if (!value) throw new Error(`מלאו את השדה "${field.label}".`);
    if (field.component === "header" && MEDIA_HEADERS[field.kind]) {
      if (!/^\d{1,64}$/.test(value) && !/^https:\/\/\S+$/.test(value)) {
        throw new Error(`${field.label}: נדרש קישור שמתחיל ב-https:// או מזהה מדיה (ספרות).`);
      }
      header.push(mediaParameter(field.kind, value));
      return;
    }
    if (field.component === "button") {
      const parameter = field.kind === "coupon_code" ? { type: "coupon_code", coupon_code: value } : field.kind === "payload" ? { type: "payload", payload: value } : { type: "text", text: value };
      buttons.push({ type: "button", sub_type: field.sub_type, index: field.index, parameters: [parameter] });
      return;
    }
    const parameter = { type: "text", text: value };
    if (field.name) parameter.parameter_name = field.name;
    (field.component === "header" ? header : body).push(parameter);
  });
  const components = [];
  if (header.length) components.push({ type: "header", parameters: header });
  if (body.length) components.push({ type: "body", parameters: body });
  components.push(...buttons);
  const result = { name: template.name, language: { code: template.language } };
  if (components.length) result.components = components;
  return result;
}

function listed(value) {
  if (Array.isArray(value)) return value.length ? value.join(", ") : "ללא";
  if (value === null || value === undefined) return "ללא";
  return String(value);
}

function differenceText(difference) {
  const field = String(difference.field || "");
  const { expected, given } = difference;
  if (field === "template.name") return "אין תבנית בשם הזה ב-WhatsApp Manager";
  if (field === "template.language.code") return `התבנית אינה קיימת בשפה ${languageName(given)}; היא קיימת ב: ${listed((expected || []).map(languageName))}`;
  if (field === "template.status") return `התבנית במצב ${given} ואינה מאושרת לשליחה כרגע`;
  const button = /^template\.components\.button\[(\d+)\]$/.exec(field);
  if (button) {
    const n = Number(button[1]) + 1;
    if (expected === null || expected === undefined) return `לתבנית אין כפתור ${n}`;
    if (typeof expected === "string") return `כפתור ${n} הוא מסוג ${expected}, נשלח ${listed(given)}`;
    return `כפתור ${n} מקבל ${listed(expected)} פרמטרים, נשלחו ${listed(given)}`;
  }
  const part = PARTS[field.replace("template.components.", "")];
  if (part) {
    if (expected === null || expected === undefined) return `לתבנית אין ${part === PARTS.header ? "כותרת" : part}, ונשלחו לה ${listed(given)} פרמטרים`;
    if (Array.isArray(expected)) return `${part} מקבל את הפרמטרים ${listed(expected)}; נשלחו ${listed(given)}`;
    return `${part} מקבל ${expected} פרמטרים, נשלחו ${listed(given)}`;
  }
  return difference.message || field;
}

/** A 422 template_mismatch in words: which template, and each difference. */
export function mismatchText(detail) {
  const template = detail.template || {};
  const which = template.name ? `התבנית ${template.name}${template.language ? ` (${languageName(template.language)})` : ""}` : "התבנית";
  const differences = (detail.differences || []).map(differenceText);
  const why = differences.length ? differences.join("; ") : detail.message || "";
  return `${which} אינה תואמת את מה שאושר ב-WhatsApp: ${why}. ההודעה לא נשלחה; רשימת התבניות רועננה, בחרו ומלאו שוב.`;
}
