// Step 2 (Node.js), run once per word by a map step.
exports.handler = async (word) => ({ word, upper: word.toUpperCase(), length: word.length });
