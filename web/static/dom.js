// The few DOM helpers every part of the page uses.
import { stateClass, stateLabel } from "./format.js";

export const $ = (id) => document.getElementById(id);

// setText changes an element's text only when it differs, so screen
// readers and selections are not disturbed every second.
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function setBadge(el, state) {
  state = state || "unknown";
  setText(el, stateLabel(state));
  const cls = "badge " + stateClass(state);
  if (el.className !== cls) el.className = cls;
  if (el.dataset.state !== state) el.dataset.state = state;
}
