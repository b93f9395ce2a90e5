// French for chatdesk.js, which loads this file for data-locale="fr" (or a page or browser in
// French): one line a string, in the order of its KEYS.
document.currentScript.strings = `Discutons
Ouvrir le chat
Fermer le chat
Messages précédents
Bonjour ! Comment pouvons-nous vous aider ?
Conversation
La conversation a été supprimée.
Ce chat est clos. Écrivez pour le rouvrir.
Le support écrit…
Message
Écrire un message…
Envoyer
Joindre des fichiers
Commencer une nouvelle conversation ? Celle-ci sera masquée.
Annuler
Nouvelle conversation
Supprimer définitivement cette conversation et ses fichiers ?
Supprimer
Plus
Télécharger la transcription
Supprimer la conversation
Nom
E-mail
Pour vous répondre si vous partez (facultatif) :
Non merci
Enregistrer
Nous sommes absents et répondrons bientôt.
Le serveur de chat est injoignable.
Fichiers de {0} au plus.
{0} fichiers au plus par message.
Types de fichiers acceptés : {0}.
Le fichier est vide.
{0} caractères au plus par message.
Analyse…
Envoi…
Envoyé
Lu
Non envoyé
Pas encore envoyé : il partira au retour de la connexion.
Ce chat est terminé. Réessayez pour en commencer un nouveau.
Le téléchargement a échoué. Réessayez dans un instant.
Ce lien a déjà été utilisé ou a expiré.
Ouvrir le chat, {0} non lu(s)
Support
Réessayer
Retirer
Fichier expiré
Télécharger
Envoyer sans les fichiers
Modifier
Image précédente
Image suivante
Fermer
Chat clos
Chat rouvert
Mis en attente`;
