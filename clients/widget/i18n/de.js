// German for chatdesk.js, which loads this file for data-locale="de" (or a page or browser in
// German): one line a string, in the order of its KEYS.
document.currentScript.strings = `Schreiben Sie uns
Chat öffnen
Chat schließen
Frühere Nachrichten
Hallo! Wie können wir helfen?
Unterhaltung
Die Unterhaltung wurde gelöscht.
Dieser Chat wurde geschlossen. Schreiben Sie, um ihn wieder zu öffnen.
Der Support schreibt…
Nachricht
Nachricht schreiben…
Senden
Dateien anhängen
Neue Unterhaltung beginnen? Diese wird ausgeblendet.
Abbrechen
Neue Unterhaltung
Diese Unterhaltung und ihre Dateien endgültig löschen?
Löschen
Mehr
Verlauf herunterladen
Unterhaltung löschen
Name
E-Mail
Damit wir antworten können, falls Sie gehen (optional):
Nein danke
Speichern
Wir sind gerade nicht da und antworten bald.
Der Chat-Server ist nicht erreichbar.
Dateien dürfen bis zu {0} groß sein.
Bis zu {0} Dateien pro Nachricht.
Erlaubte Dateitypen: {0}.
Die Datei ist leer.
Bis zu {0} Zeichen pro Nachricht.
Wird geprüft…
Wird gesendet…
Gesendet
Gelesen
Nicht gesendet
Noch nicht gesendet: geht raus, sobald die Verbindung zurück ist.
Dieser Chat ist beendet. „Erneut versuchen“ beginnt einen neuen.
Der Download ist fehlgeschlagen. Bitte gleich noch einmal versuchen.
Dieser Link wurde schon benutzt oder ist abgelaufen.
Chat öffnen, {0} ungelesen
Support
Erneut versuchen
Entfernen
Datei abgelaufen
Herunterladen
Ohne Dateien senden
Bearbeiten
Vorheriges Bild
Nächstes Bild
Schließen
Chat geschlossen
Chat wieder geöffnet
Als wartend markiert`;
