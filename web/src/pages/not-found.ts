import type { PageContext } from '../app';
import { h } from '../dom';

export async function notFoundPage(ctx: PageContext): Promise<void> {
  ctx.setTitle('Page not found');
  ctx.main.append(
    h('h1', null, 'Page not found'),
    h('p', null, 'There is no page at this address.'),
    h('p', null, h('a', { href: '/' }, 'Go to my meetings')),
  );
  return Promise.resolve();
}
