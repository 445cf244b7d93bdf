// Labelled form fields and the error region every form shares.

import { h, uid, type Child } from './dom';

type Control = HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;

export interface Field<T extends Control> {
  /** The label, control and hint, ready to place in a form. */
  readonly element: HTMLDivElement;
  readonly control: T;
  /** Marks the field invalid (pointing at the form's error message) or valid again. */
  setInvalid(describedBy: string | null): void;
}

/**
 * A control with its visible label, an optional hint above it and an optional
 * explanation below it; screen readers read both with the control.
 */
export function field<T extends Control>(
  label: string,
  control: T,
  hint?: Child,
  after?: HTMLElement,
): Field<T> {
  if (!control.id) control.id = uid('field');
  const hintId = hint ? uid('hint') : null;
  if (after && !after.id) after.id = uid('explain');
  const baseDescribedBy = [hintId, after?.id].filter(Boolean).join(' ');
  if (baseDescribedBy) control.setAttribute('aria-describedby', baseDescribedBy);
  const element = h(
    'div',
    { class: 'field' },
    h('label', { for: control.id, class: 'field__label' }, label),
    hint ? h('div', { id: hintId, class: 'field__hint' }, hint) : null,
    control,
    after,
  );
  return {
    element,
    control,
    setInvalid(describedBy) {
      if (describedBy) {
        control.setAttribute('aria-invalid', 'true');
        control.setAttribute('aria-describedby', `${describedBy} ${baseDescribedBy}`.trim());
        element.classList.add('field--invalid');
      } else {
        control.removeAttribute('aria-invalid');
        if (baseDescribedBy) control.setAttribute('aria-describedby', baseDescribedBy);
        else control.removeAttribute('aria-describedby');
        element.classList.remove('field--invalid');
      }
    },
  };
}

/**
 * The place a form reports why it failed. Screen readers announce it (role="alert");
 * the field at fault, when known, is marked invalid, points here and takes the focus.
 */
export class FormErrors {
  readonly element: HTMLDivElement;
  private readonly messageId = uid('form-error');
  private marked: Field<Control>[] = [];

  constructor() {
    this.element = h('div', { class: 'form-error', role: 'alert', hidden: true });
  }

  show(message: string, fieldsAtFault: Field<Control>[] = []): void {
    this.clear();
    this.element.replaceChildren(
      h('p', { class: 'form-error__title' }, 'Please check the form'),
      h('p', { id: this.messageId, class: 'form-error__message' }, message),
    );
    this.element.hidden = false;
    for (const f of fieldsAtFault) f.setInvalid(this.messageId);
    this.marked = fieldsAtFault;
    const first = fieldsAtFault[0];
    if (first) first.control.focus();
    else this.element.scrollIntoView({ block: 'nearest' });
  }

  /** A failure that is not about the form's content (e.g. the network). */
  showProblem(message: string): void {
    this.clear();
    this.element.replaceChildren(h('p', { class: 'form-error__message' }, message));
    this.element.hidden = false;
    this.element.scrollIntoView({ block: 'nearest' });
  }

  clear(): void {
    for (const f of this.marked) f.setInvalid(null);
    this.marked = [];
    this.element.hidden = true;
    this.element.replaceChildren();
  }
}

/** Disables a form's submit button while a request runs; returns the undo. */
export function busy(form: HTMLFormElement): () => void {
  const buttons = Array.from(form.querySelectorAll<HTMLButtonElement>('button'));
  form.setAttribute('aria-busy', 'true');
  for (const b of buttons) b.disabled = true;
  return () => {
    form.removeAttribute('aria-busy');
    for (const b of buttons) b.disabled = false;
  };
}
