import { createHash } from 'node:crypto';
import type { SandboxUser, SentMessage } from './users.js';

/**
 * Deterministic fake creator data: the same user always has the same fans, chats, messages and
 * earnings, so tests and demos can assert on them. Only messages the creator sends are stored.
 */

export interface Fan {
  id: number;
  username: string;
  name: string;
  subscribedAt: number;
  renewsAt: number;
  price: number;
}

export interface Message {
  id: number;
  chatId: string;
  fromCreator: boolean;
  text: string;
  price: number;
  createdAt: number;
}

export interface Post {
  id: number;
  text: string;
  /** 0 for a free post; otherwise the unlock price in USD. */
  price: number;
  mediaCount: number;
  likesCount: number;
  commentsCount: number;
  postedAt: number;
}

export interface Transaction {
  id: number;
  type: 'subscription' | 'tip' | 'message';
  amount: number;
  fee: number;
  net: number;
  fanId: number;
  createdAt: number;
}

/** Seeded history ends here, so it does not move with the clock. */
const SEED_EPOCH = Date.UTC(2025, 5, 1);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NAMES = ['Alex', 'Sam', 'Robin', 'Charlie', 'Jamie', 'Taylor', 'Morgan', 'Casey', 'Riley', 'Jordan', 'Avery', 'Quinn'];
const LINES = [
  'Hey! Loved your last post',
  'Thanks so much for subscribing!',
  'When is the next stream?',
  'Have a great weekend',
  'Can I request something special?',
  'Sent you a tip',
  'Good morning!',
  'That was amazing, thank you',
  'Check your messages for something new',
  'Miss you already',
];

/** Small seeded PRNG (mulberry32): fast and reproducible. */
function random(user: SandboxUser, topic: string): () => number {
  let seed = createHash('sha256').update(`${user.platform}:${user.key}:${topic}`).digest().readUInt32BE(0);
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const pick = <T>(next: () => number, list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
const cents = (value: number): number => Math.round(value * 100) / 100;

export function fansOf(user: SandboxUser): Fan[] {
  const next = random(user, 'fans');
  const count = 30 + Math.floor(next() * 40);
  return Array.from({ length: count }, (_, index) => {
    const name = pick(next, NAMES);
    const subscribedAt = SEED_EPOCH - Math.floor(next() * 365 * DAY);
    return {
      id: 200_000_000 + Math.floor(next() * 700_000_000),
      username: `${name.toLowerCase()}${index + 1}`,
      name,
      subscribedAt,
      renewsAt: subscribedAt + 30 * DAY,
      price: cents(4.99 + Math.floor(next() * 3) * 5),
    };
  }).sort((a, b) => b.subscribedAt - a.subscribedAt);
}

/** Fans with a conversation: the first 25. */
export function chatFansOf(user: SandboxUser): Fan[] {
  return fansOf(user).slice(0, 25);
}

export function findChatFan(user: SandboxUser, chatId: string): Fan | undefined {
  return chatFansOf(user).find((fan) => String(fan.id) === chatId);
}

/** One conversation, newest first: what the creator sent, then the seeded history. */
export function messagesOf(user: SandboxUser, fan: Fan): Message[] {
  const chatId = String(fan.id);
  const next = random(user, `chat:${chatId}`);
  const count = 8 + Math.floor(next() * 30);
  let at = SEED_EPOCH - Math.floor(next() * 10 * DAY);
  const seeded: Message[] = [];
  for (let index = 0; index < count; index++) {
    const fromCreator = next() < 0.4;
    seeded.push({
      id: fan.id * 100 + (count - index),
      chatId,
      fromCreator,
      text: pick(next, LINES),
      price: fromCreator && next() < 0.2 ? 9.99 : 0,
      createdAt: at,
    });
    at -= Math.floor(next() * 12 * HOUR) + 60_000;
  }
  const sent = user.sentMessages
    .filter((message) => message.chatId === chatId)
    .reverse()
    .map((message) => fromSent(message));
  return [...sent, ...seeded];
}

/** Conversations ordered by their latest message, as a chat list shows them. */
export function chatsOf(user: SandboxUser): Array<{ fan: Fan; messages: Message[] }> {
  return chatFansOf(user)
    .map((fan) => ({ fan, messages: messagesOf(user, fan) }))
    .sort((a, b) => b.messages[0]!.createdAt - a.messages[0]!.createdAt);
}

export function sendMessage(user: SandboxUser, fan: Fan, text: string, at: number, price = 0): Message {
  const message: SentMessage = {
    // Above every seeded id (fan ids stay below 1e9, seeded message ids below 1e11).
    id: 100_000_000_000 + ++user.sentCount,
    chatId: String(fan.id),
    text,
    price: cents(price),
    createdAt: at,
  };
  user.sentMessages.push(message);
  return fromSent(message);
}

/** Deletes a message the creator sent through the API (seeded history cannot be deleted); false when none. */
export function unsendMessage(user: SandboxUser, fan: Fan, messageId: string): boolean {
  const index = user.sentMessages.findIndex((message) => message.chatId === String(fan.id) && String(message.id) === messageId);
  if (index < 0) return false;
  user.sentMessages.splice(index, 1);
  return true;
}

export function transactionsOf(user: SandboxUser): Transaction[] {
  const next = random(user, 'earnings');
  const fans = fansOf(user);
  const count = 60 + Math.floor(next() * 60);
  let at = SEED_EPOCH - Math.floor(next() * DAY);
  return Array.from({ length: count }, (_, index) => {
    const type = pick(next, ['subscription', 'tip', 'message'] as const);
    const amount = type === 'subscription' ? 9.99 : cents(5 + Math.floor(next() * 20) * 2.5);
    const fee = cents(amount * 0.2);
    const transaction: Transaction = {
      id: 500_000_000 + count - index,
      type,
      amount,
      fee,
      net: cents(amount - fee),
      fanId: pick(next, fans).id,
      createdAt: at,
    };
    at -= Math.floor(next() * 36 * HOUR) + 60_000;
    return transaction;
  });
}

const CAPTIONS = [
  'New set is up!',
  'Behind the scenes from today',
  'Thank you for 1k fans',
  'Weekend vibes',
  'Q&A in the comments',
  'A little something for my subscribers',
  'Sunset shoot',
  'Guess what is coming next week',
];

/** The creator's posts, newest first (20–59 per user). */
export function postsOf(user: SandboxUser): Post[] {
  const next = random(user, 'posts');
  const count = 20 + Math.floor(next() * 40);
  let at = SEED_EPOCH - Math.floor(next() * DAY);
  return Array.from({ length: count }, (_, index) => {
    const post: Post = {
      id: 700_000_000 + count - index,
      text: pick(next, CAPTIONS),
      price: next() < 0.25 ? cents(4.99 + Math.floor(next() * 4) * 5) : 0,
      mediaCount: 1 + Math.floor(next() * 6),
      likesCount: Math.floor(next() * 500),
      commentsCount: Math.floor(next() * 60),
      postedAt: at,
    };
    at -= Math.floor(next() * 3 * DAY) + HOUR;
    return post;
  });
}

export interface Page<T> {
  items: T[];
  hasMore: boolean;
  nextOffset: number | null;
}

export function paginate<T>(items: readonly T[], { limit, offset }: { limit: number; offset: number }): Page<T> {
  const slice = items.slice(offset, offset + limit);
  const hasMore = offset + limit < items.length;
  return { items: slice, hasMore, nextOffset: hasMore ? offset + limit : null };
}

function fromSent(message: SentMessage): Message {
  return { ...message, fromCreator: true };
}
