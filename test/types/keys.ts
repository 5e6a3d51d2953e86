// Typed keys of the per-key API: the app declares them by declaration merging.
import altSession = require('alt-session');
import express = require('express');

declare module 'alt-session' {
  interface SessionData {
    views: number;
    cart: string[];
    nickname?: string;
  }
}

const app = express();
app.use(altSession.mock());

type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
function expectType<T>(_: T): void {}

app.get('/typed', async (req, res) => {
  const views = await req.session.get('views');
  expectType<Equal<typeof views, number | null>>(true);
  await req.session.set('views', (views ?? 0) + 1);
  await req.session.set('views', undefined); // removes it
  await req.session.set('cart', ['book']);
  req.session.get('cart', (err, cart) => expectType<Equal<typeof cart, string[] | null | undefined>>(true));
  // @ts-expect-error views is declared a number
  await req.session.set('views', 'many');
  // @ts-expect-error cart is declared string[]
  await req.session.set('cart', [1]);
  // Undeclared keys: as before.
  const other = await req.session.get('other');
  expectType<Equal<typeof other, unknown>>(true);
  const user = await req.session.get<{ name: string }>('user');
  expectType<Equal<typeof user, { name: string } | null>>(true);
  await req.session.set('other', { anything: true });
  const key: string = String(req.query.key);
  await req.session.set(key, 1);
  const some = await req.session.get(key);
  expectType<Equal<typeof some, unknown>>(true);
  const many = await req.session.mget(['views', 'cart', 'other']);
  expectType<Equal<typeof many.views, number | null>>(true);
  expectType<Equal<typeof many.cart, string[] | null>>(true);
  expectType<Equal<typeof many.other, unknown>>(true);
  const all = await req.session.getAll();
  expectType<Equal<typeof all.views, number | undefined>>(true);
  await req.session.mset({ views: 2, cart: [], other: 'x', nickname: undefined });
  // @ts-expect-error views is declared a number
  await req.session.mset({ views: '2', other: 'x' });
  await req.session.incr('views');
  await req.session.incr('counter', 2);
  // @ts-expect-error cart is not a number
  await req.session.incr('cart');
  res.json({ views, cart: many.cart });
});
