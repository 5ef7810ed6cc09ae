"""An order flow as a durable function: reserve stock (a step), wait for a
person's approval (a callback), then charge (a step). Steps run once per
order, whatever crashes or retries happen; the container is released while
the order waits for its approval."""


def reserve(order):
    print("reserving", order["qty"], "x", order["item"])
    return {"reservation": "r-" + order["id"], "item": order["item"], "qty": order["qty"]}


def charge(order, reservation):
    print("charging", order["amount"], "for", reservation["reservation"])
    return {"charge": "c-" + order["id"], "amount": order["amount"]}


def handler(order, context):
    reservation = context.step("reserve", lambda: reserve(order))
    # The submitter runs once, as the step "approval.submit": send the URL to
    # whoever approves (here it is printed: `ferry logs <id>` shows it).
    approval = context.wait_for_callback(
        "approval", lambda callback_id, url: print("approve with: curl -d '{\"approved\": true}'", url),
        timeout=24 * 3600)
    if not approval.get("approved"):
        return {"status": "rejected", "reservation": reservation}
    return {"status": "charged", "reservation": reservation,
            "charge": context.step("charge", lambda: charge(order, reservation))}
