// A request handler of the tenant-aware app: create a booking and announce it,
// in one transaction of the tenant the request's host belongs to.
import { publish, transaction, withTenant } from './store.js';
import { tenantForHost } from './tenants.js';

export function handleCreateBooking(req) {
  return withTenant(tenantForHost(req.host), () => createBooking(req.body));
}

// Knows nothing of tenants: the store picks the database.
export async function createBooking({ title, attendee }, eventType = 'booking.created') {
  return transaction(async (tx) => {
    const { rows: [booking] } = await tx.query(
      'INSERT INTO bookings (title, attendee) VALUES ($1, $2) RETURNING id', [title, attendee]);
    const eventId = await publish(tx, eventType, { bookingId: booking.id, title, attendee },
                                  { orderingKey: `attendee:${attendee}` });
    return { bookingId: booking.id, eventId };
  });
}
