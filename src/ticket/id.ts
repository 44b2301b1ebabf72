/** Ticket ids sort by creation time and are safe as a ref path segment. */
export const TICKET_ID = /^\d{8}T\d{6}Z-[0-9a-f]{6,32}$/;
