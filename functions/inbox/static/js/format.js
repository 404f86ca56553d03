// Words, numbers and times as an Israeli agent reads them. Pure functions: tested in the browser suite.

import { mismatchText } from "./templates.js";

const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200B\u2060\uFEFF\u061C\u200E\u200F]/g;

/** A display name without bidi overrides, isolates or invisible characters; null when nothing is left. */
export function cleanName(name) {
  if (typeof name !== "string") return null;
  const cleaned = name.replace(BIDI_CONTROLS, "").replace(/\s+/g, " ").trim();
  return cleaned ? cleaned : null;
}

/** +972 52-555-1234, or masked as +972 52-•••-••34; other countries as + and the digits. */
export function displayNumber(waId, mode) {
  const digits = String(waId || "").replace(/\D/g, "");
  if (!digits) return "";
  if (digits.startsWith("972") && digits.length === 12) {
    const national = digits.slice(3);
    const parts = [national.slice(0, 2), national.slice(2, 5), national.slice(5)];
    if (mode === "full") return `+972 ${parts[0]}-${parts[1]}-${parts[2]}`;
    return `+972 ${parts[0]}-•••-••${parts[2].slice(2)}`;
  }
  if (mode === "full") return `+${digits}`;
  const keep = Math.min(4, Math.max(0, digits.length - 4));
  return `+${digits.slice(0, keep)}${"•".repeat(Math.max(0, digits.length - keep - 2))}${digits.slice(-2)}`;
}

function formatter(timeZone, options) {
  return new Intl.DateTimeFormat("he-IL", { timeZone, ...options });
}

function dayKey(date, timeZone) {
  return formatter(timeZone, { year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

export function clockTime(iso, timeZone) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return formatter(timeZone, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(date);
}

/** For the lead list: the time today, "אתמול", or the date. */
export function shortWhen(iso, timeZone, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  if (dayKey(date, timeZone) === dayKey(now, timeZone)) return clockTime(iso, timeZone);
  const yesterday = new Date(now.getTime() - 86400000);
  if (dayKey(date, timeZone) === dayKey(yesterday, timeZone)) return "אתמול";
  return formatter(timeZone, { day: "numeric", month: "numeric" }).format(date);
}

export function dayLabel(iso, timeZone, now = new Date()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  if (dayKey(date, timeZone) === dayKey(now, timeZone)) return "היום";
  if (dayKey(date, timeZone) === dayKey(new Date(now.getTime() - 86400000), timeZone)) return "אתמול";
  return formatter(timeZone, { weekday: "long", day: "numeric", month: "numeric", year: "numeric" }).format(date);
}

export function dayOf(iso, timeZone) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : dayKey(date, timeZone);
}

/** "יום ב׳, 7.12 בשעה 10:00" for a meeting slot. */
export function slotWhen(iso, timeZone) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const day = formatter(timeZone, { weekday: "short", day: "numeric", month: "numeric" }).format(date);
  return `${day} בשעה ${clockTime(iso, timeZone)}`;
}

/** What is left until `iso`: "4 שע׳ ו-12 דק׳", "12 דק׳", "פחות מדקה"; null once it has passed. */
export function timeLeft(iso, now = new Date()) {
  const end = new Date(iso).getTime();
  if (Number.isNaN(end)) return null;
  const seconds = Math.floor((end - now.getTime()) / 1000);
  if (seconds <= 0) return null;
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (hours > 0) return minutes > 0 ? `${hours} שע׳ ו-${minutes} דק׳` : `${hours} שע׳`;
  if (minutes > 0) return `${minutes} דק׳`;
  return "פחות מדקה";
}

export function secondsIn(seconds) {
  const value = Math.max(1, Math.ceil(Number(seconds) || 0));
  if (value < 90) return `${value} שניות`;
  return `${Math.ceil(value / 60)} דקות`;
}

export const INTENTS = {
  greeting: "ברכה",
  availability: "זמינות",
  meeting: "פגישה",
  opt_out: "הסרה",
  opt_in: "חזרה לרשימה",
  default: "אחר",
};

export const STATUSES = {
  accepted: { ticks: "🕓", label: "נשלחה ל-WhatsApp" },
  held_for_quality_assessment: { ticks: "🕓", label: "בבדיקת איכות של Meta" },
  sent: { ticks: "✓", label: "נשלחה" },
  delivered: { ticks: "✓✓", label: "נמסרה" },
  read: { ticks: "✓✓", label: "נקראה" },
  played: { ticks: "✓✓", label: "הושמעה" },
  failed: { ticks: "⚠", label: "לא נמסרה" },
};

/** Every API refusal in words an agent can act on. */
/** Bytes as an agent reads them: 48 KB, 1.2 MB (decimal, as Meta's limits are written). */
export function fileSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1000 * 1000) return `${Math.round(bytes / 1000)} KB`;
  const mb = bytes / (1000 * 1000);
  return `${mb < 10 ? mb.toFixed(1) : Math.round(mb)} MB`;
}

export function errorText(error) {
  const detail = error && error.body && error.body.error ? error.body.error : {};
  const graphTitle = detail.graph_error && detail.graph_error.title ? detail.graph_error.title : null;
  switch (detail.code || error.code) {
    case "network":
      return "אין חיבור לשרת, ולא ידוע אם ההודעה יצאה. לחצו שוב על שליחה כשהחיבור יחזור: ההודעה לא תישלח פעמיים.";
    case "idempotency_key_in_use":
      return `ההודעה עדיין בשליחה (ממתינים לאישור מ-WhatsApp). אפשר ללחוץ שוב בעוד ${secondsIn(
        detail.retry_after_seconds || error.retryAfter || 5,
      )}; היא לא תישלח פעמיים.`;
    case "idempotency_key_reused":
      return "ההודעה השתנתה בזמן השליחה החוזרת. לחצו שוב על שליחה.";
    case "template_mismatch":
      return mismatchText(detail);
    case "file_too_large":
      return `הקובץ גדול מדי (${fileSize(detail.size)}): אפשר לשלוח עד ${fileSize(detail.limit_bytes)} לקובץ מסוג זה.`;
    case "unsupported_media_type":
      return "WhatsApp לא מקבל קבצים מהסוג הזה. אפשר לשלוח תמונה (JPEG, PNG), מסמך (PDF, Word, Excel, PowerPoint, טקסט), סרטון MP4 או הקלטה.";
    case "content_mismatch":
      return `תוכן הקובץ אינו ${detail.mime_type || "מהסוג"} ששמו מציג. שמרו אותו מחדש בפורמט הנכון ונסו שוב.`;
    case "empty_file":
      return "הקובץ ריק. בחרו קובץ אחר.";
    case "rate_limited": {
      const wait = detail.retry_after_seconds || error.retryAfter;
      const who = detail.scope === "recipient" ? "לליד הזה" : detail.scope === "number" ? "מהמספר העסקי" : "ב-WhatsApp";
      return `נשלחו יותר מדי הודעות ${who} בזמן קצר. אפשר לנסות שוב בעוד ${secondsIn(wait)}.`;
    }
    case "outside_customer_service_window":
      return "עברו יותר מ-24 שעות מההודעה האחרונה של הליד, ולכן WhatsApp מאפשר לשלוח רק תבנית מאושרת.";
    case "recipient_opted_out":
      return "הליד ביקש לא לקבל הודעות (הסרה). ההודעה לא נשלחה.";
    case "validation_error":
      return `ההודעה לא תקינה: ${detail.message || "בדקו את השדות"}${detail.field ? ` (${detail.field})` : ""}.`;
    case "whatsapp_error":
      return `WhatsApp סירב לשלוח: ${graphTitle || detail.message || "שגיאה לא ידועה"}${
        detail.graph_error && detail.graph_error.code ? ` (קוד ${detail.graph_error.code})` : ""
      }.`;
    case "whatsapp_unavailable":
      return `WhatsApp אינו זמין כרגע${graphTitle ? ` (${graphTitle})` : ""}. נסו שוב בעוד דקה.`;
    case "temporarily_unavailable":
      return "השירות עמוס לרגע. נסו שוב בעוד כמה שניות.";
    case "not_found":
      return "השיחה לא נמצאה.";
    case "unauthorized":
      return "פג תוקף הכניסה. היכנסו שוב.";
    case "forbidden":
      return "אין הרשאה לפעולה הזו.";
    case "configuration_error":
      return `השירות אינו מוגדר עד הסוף: ${detail.message || ""}`;
    default:
      if (error.status === 413) return "הקובץ גדול מדי לשליחה דרך המערכת (עד כ-4.5 MB).";
      return `השליחה נכשלה${detail.message ? `: ${detail.message}` : ""}${error.status ? ` (HTTP ${error.status})` : ""}.`;
  }
}
