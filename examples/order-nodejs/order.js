// An order flow as a durable function: reserve stock (a step), wait for a
// person's approval (a callback), then charge (a step). Steps run once per
// order, whatever crashes or retries happen; the container is released while
// the order waits for its approval.

const reserve = (order) => {
  console.log('reserving', order.qty, 'x', order.item);
  return { reservation: `r-${order.id}`, item: order.item, qty: order.qty };
};

const charge = (order, reservation) => {
  console.log('charging', order.amount, 'for', reservation.reservation);
  return { charge: `c-${order.id}`, amount: order.amount };
};

exports.handler = async (order, context) => {
  const reservation = await context.step('reserve', () => reserve(order));
  // The submitter runs once, as the step "approval.submit": send the URL to
  // whoever approves (here it is printed: `ferry logs <id>` shows it).
  const approval = await context.waitForCallback('approval',
    (callbackId, url) => console.log(`approve with: curl -d '{"approved": true}' ${url}`),
    { timeout: { hours: 24 } });
  if (!approval || !approval.approved) return { status: 'rejected', reservation };
  return { status: 'charged', reservation, charge: await context.step('charge', () => charge(order, reservation)) };
};
