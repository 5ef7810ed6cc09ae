# Step 1 (Python): split a text into words.
def handler(event, context):
    text = (event or {}).get("text", "")
    words = [w.strip(".,;:!?\"'").lower() for w in text.split()]
    return [w for w in words if w]
