import * as api from '../api';
import { brand, signedIn, takeFlash, type PageContext } from '../app';
import { h, sentence } from '../dom';
import { busy, field, FormErrors } from '../form';

export async function signInPage(ctx: PageContext): Promise<void> {
  ctx.setTitle('Sign in');
  const flash = takeFlash();
  const errors = new FormErrors();

  const name = field(
    'User name',
    h('input', {
      type: 'text',
      name: 'username',
      autocomplete: 'username',
      autocapitalize: 'none',
      spellcheck: 'false',
      required: true,
    }),
  );
  const password = field(
    'Password',
    h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true }),
  );

  const form = h(
    'form',
    { class: 'form', novalidate: true },
    errors.element,
    name.element,
    password.element,
    h('div', { class: 'form__actions' }, h('button', { type: 'submit', class: 'button button--primary button--wide' }, 'Sign in')),
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void submit();
  });

  async function submit(): Promise<void> {
    const user = name.control.value.trim();
    const pass = password.control.value;
    if (user === '' || pass === '') {
      const missing = [user === '' ? name : null, pass === '' ? password : null].filter((f) => f !== null);
      errors.show(
        user === '' && pass === ''
          ? 'Enter your user name and password.'
          : user === ''
            ? 'Enter your user name.'
            : 'Enter your password.',
        missing,
      );
      return;
    }
    errors.clear();
    const done = busy(form);
    try {
      const session = await api.signIn(user, pass);
      signedIn(session);
    } catch (e) {
      done();
      if (e instanceof api.ApiError && e.status === 401) {
        // The server gives one answer for an unknown account, a wrong password and a
        // disabled account, so as not to reveal which accounts exist.
        errors.show('The user name or password is not correct, or the account is disabled.', [password]);
        password.control.value = '';
      } else {
        errors.showProblem(e instanceof Error ? sentence(e.message) : String(e));
      }
    }
  }

  ctx.main.classList.add('page--auth');
  ctx.main.append(
    h(
      'div',
      { class: 'auth-card' },
      h('div', { class: 'auth-card__brand' }, brand()),
      h('h1', { class: 'auth-card__title' }, 'Sign in'),
      flash ? h('div', { class: `notice notice--${flash.tone}`, role: 'status' }, flash.text) : null,
      form,
      h(
        'p',
        { class: 'auth-card__foot' },
        'Forgotten your password or locked out? Ask your Conclave administrator to reset it.',
      ),
    ),
  );
  name.control.focus();
  return Promise.resolve();
}
