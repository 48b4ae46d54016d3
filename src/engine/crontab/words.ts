// A crontab schedule in words for people (the dashboard): the common shapes only. Anything
// else gives null and the expression itself is shown, which is never wrong.

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const NUMBER = /^\d{1,2}$/;

const pad = (n: string) => n.padStart(2, "0");

function days(field: string): string | null {
  if (field === "1-5") return "on weekdays";
  if (field === "0,6" || field === "6,0") return "on weekends";
  const list = field.split(",");
  if (!list.every((day) => NUMBER.test(day) && Number(day) <= 7)) return null;
  return `on ${list.map((day) => `${DAYS[Number(day) % 7]}s`).join(", ")}`;
}

/** e.g. `*\/10 * * * *` → "every 10 minutes", `0 3 * * *` → "daily at 03:00"; null when not a common shape. */
export function describeSchedule(expression: string): string | null {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) return null;
  const [minute, hour, dom, month, dow] = fields as [string, string, string, string, string];
  if (month !== "*") return null;
  const everyDay = dom === "*" && dow === "*";
  if (everyDay && hour === "*") {
    if (minute === "*") return "every minute";
    const step = /^\*\/(\d+)$/.exec(minute);
    if (step) return step[1] === "1" ? "every minute" : `every ${step[1]} minutes`;
    if (NUMBER.test(minute)) return `hourly at :${pad(minute)}`;
    return null;
  }
  if (!NUMBER.test(minute)) return null;
  const hourStep = /^\*\/(\d+)$/.exec(hour);
  if (hourStep && everyDay) return `every ${hourStep[1]} hours at :${pad(minute)}`;
  if (!hour.split(",").every((h) => NUMBER.test(h))) return null;
  const at = `at ${hour.split(",").map((h) => `${pad(h)}:${pad(minute)}`).join(", ")}`;
  if (everyDay) return `daily ${at}`;
  if (dom === "*") {
    const on = days(dow);
    return on ? `${on} ${at}` : null;
  }
  if (dow === "*" && NUMBER.test(dom)) return `monthly on day ${dom} ${at}`;
  return null;
}
