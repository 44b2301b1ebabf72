// Placeholder entry until the CLI lands.
console.log('bg-sign');
